//! Settings that load but will not do what they seem to.

use postern_config::Settings;

pub fn warnings(settings: &Settings) -> Vec<String> {
    settings.submission_without_tls().into_iter().collect()
}
