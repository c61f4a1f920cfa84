//! The redo log's sync, on a thread of its own: the writer writes a lone
//! write's record, asks for the sync, applies the write to redb while the
//! device works, then waits for the sync before answering. The write pays
//! the longer of the two, not their sum.

use std::fs::File;
use std::io;
use std::sync::mpsc;

/// The sync thread: asked with [`Syncer::start`], which returns the
/// [`Syncing`] that answers.
pub(super) struct Syncer {
    ask: mpsc::Sender<mpsc::SyncSender<io::Result<()>>>,
}

/// One sync under way: its own answer, so none can be taken for another.
pub(super) struct Syncing(mpsc::Receiver<io::Result<()>>);

impl Syncer {
    /// Starts the thread on `file` (a handle on the log); it ends when the
    /// `Syncer` is dropped.
    pub(super) fn spawn(file: File) -> io::Result<Syncer> {
        let (ask, asked) = mpsc::channel::<mpsc::SyncSender<io::Result<()>>>();
        std::thread::Builder::new()
            .name("store-log-sync".into())
            .spawn(move || {
                while let Ok(tell) = asked.recv() {
                    let _ = tell.send(file.sync_data());
                }
            })?;
        Ok(Syncer { ask })
    }

    /// Starts a sync of everything written to the log so far.
    pub(super) fn start(&self) -> io::Result<Syncing> {
        let (tell, answer) = mpsc::sync_channel(1);
        self.ask.send(tell).map_err(|_| gone())?;
        Ok(Syncing(answer))
    }
}

impl Syncing {
    /// Waits for the sync to end.
    pub(super) fn wait(self) -> io::Result<()> {
        self.0.recv().unwrap_or_else(|_| Err(gone()))
    }
}

fn gone() -> io::Error {
    io::Error::other("the redo log's sync thread is gone")
}
