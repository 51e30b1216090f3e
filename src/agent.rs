//! The ureq agent behind every request of a session (timeouts, redirects by hand).

use ureq::Agent;

use crate::options::FileSourceOptions;

/// The agent for one session.
pub(crate) fn build_agent(options: &FileSourceOptions) -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        // Redirects are followed by hand: the https-to-http check and the final URL need it.
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_connect(Some(options.connect_timeout))
        .timeout_recv_response(Some(options.read_timeout))
        .timeout_per_read(Some(options.read_timeout))
        .user_agent(options.user_agent.as_str())
        .build()
        .into()
}
