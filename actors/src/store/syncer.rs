//! The redo log's sync, on a thread of its own: the writer writes a group's
//! record, asks for the sync, applies the group to redb while the device
//! works, then waits for the sync before answering anyone. A lone write
//! pays the longer of the two, not their sum.

use std::fs::File;
use std::io;
use std::sync::mpsc;

/// The sync thread: asked with [`Syncer::start`], answered by [`Syncer::wait`].
pub(super) struct Syncer {
    ask: mpsc::Sender<()>,
    done: mpsc::Receiver<io::Result<()>>,
}

impl Syncer {
    /// Starts the thread on `file` (a handle on the log); it ends when the
    /// `Syncer` is dropped.
    pub(super) fn spawn(file: File) -> io::Result<Syncer> {
        let (ask, asked) = mpsc::channel::<()>();
        let (tell, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("store-log-sync".into())
            .spawn(move || {
                while asked.recv().is_ok() {
                    if tell.send(file.sync_data()).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Syncer { ask, done })
    }

    /// Starts a sync of everything written to the log so far.
    pub(super) fn start(&self) -> io::Result<()> {
        self.ask
            .send(())
            .map_err(|_| io::Error::other("the redo log's sync thread is gone"))
    }

    /// Waits for the sync [`Syncer::start`] began.
    pub(super) fn wait(&self) -> io::Result<()> {
        self.done
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the redo log's sync thread is gone")))
    }
}
