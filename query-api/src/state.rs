//! What every handler shares: the read model, the settings, the answers kept per epoch, and the feed's backlog.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use read_model::{Epoch, ReadAt, ReadModel};

use crate::feed::FeedWatch;
use crate::settings::Settings;

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) model: Arc<ReadModel>,
    pub(crate) settings: Settings,
    pub(crate) cache: Arc<Mutex<VecDeque<Cached>>>,
    pub(crate) feed: Arc<dyn FeedWatch>,
}

/// One answer as sent, good while the read model's epoch is the one it was read at.
#[derive(Clone)]
pub(crate) struct Cached {
    pub(crate) key: String,
    pub(crate) read_at: ReadAt,
    pub(crate) body: Bytes,
    pub(crate) link: Option<String>,
}

impl AppState {
    pub(crate) fn new(model: Arc<ReadModel>, settings: Settings, feed: Arc<dyn FeedWatch>) -> AppState {
        AppState { model, settings, cache: Arc::new(Mutex::new(VecDeque::new())), feed }
    }

    pub(crate) fn cached(&self, key: &str, epoch: Epoch) -> Option<Cached> {
        let cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.iter().find(|c| c.key == key && c.read_at.epoch == epoch).cloned()
    }

    pub(crate) fn keep(&self, answer: Cached) {
        if self.settings.cache_entries == 0 {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.retain(|c| c.key != answer.key);
        cache.push_front(answer);
        cache.truncate(self.settings.cache_entries);
    }
}
