//! The settings that take one of a few names: parsed the same way from the TOML file
//! (serde) and from the command line (clap), so both accept exactly the same spellings.

use clap::ValueEnum;
use serde::Deserialize;

/// What a worker does at its connection quota (`server.on_conn_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum OnConnLimit {
    /// Stop accepting at the quota; new connections wait in the kernel backlog (Alloy).
    Wait,
    /// Accept and answer `503` with `Retry-After` and `Connection: close` at once.
    Reject,
}

/// The I/O driver (`runtime.driver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DriverChoice {
    /// io_uring when the kernel allows it, else epoll with one warning.
    Auto,
    #[serde(alias = "iouring", alias = "uring")]
    #[value(name = "io_uring", alias = "iouring", alias = "uring")]
    IoUring,
    #[serde(alias = "epoll")]
    #[value(alias = "epoll")]
    Legacy,
}

/// When the client gets its answer (`forward.ack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum AckPolicy {
    All,
    Quorum,
    Enqueue,
    /// Answered once the profile is in the spool's write-ahead log on disk (`[spool]`).
    Durable,
}

/// Where deliveries run (`forward.dispatch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Dispatch {
    /// On the worker that received the request (no thread hand-off); writer threads take
    /// the overflow beyond a worker's in-flight share.
    Worker,
    /// Always on the outbound writer threads.
    Writer,
}

/// How profiles are routed (`forward.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ForwardMode {
    /// Every profile to every endpoint (Alloy's `forward_to`).
    Fanout,
    /// Each series to its owners on Pyroscope's hash ring (`[ring]`).
    Ring,
}

/// Whether a Push body is inflated and decoded at the edge (`forward.decode_push`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DecodePush {
    /// Only when something configured reads the message (external labels, the edge
    /// distributor's validation or normalisation, ring mode, gRPC-Web re-encoding, no
    /// endpoint); otherwise the body goes downstream verbatim and unread.
    Auto,
    /// Every Push, as Alloy does: a malformed body gets an early `invalid_argument`.
    Always,
}

/// Where ring membership comes from (`ring.store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum RingStore {
    /// `[[ring.member]]` in the configuration.
    Static,
    /// dskit's ring in etcd (`[ring.etcd]`).
    Etcd,
}

/// Log output format (`log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        d: DriverChoice,
    }

    #[test]
    fn file_and_flag_spellings_agree() {
        for (text, want) in [
            ("auto", DriverChoice::Auto),
            ("io_uring", DriverChoice::IoUring),
            ("iouring", DriverChoice::IoUring),
            ("uring", DriverChoice::IoUring),
            ("legacy", DriverChoice::Legacy),
            ("epoll", DriverChoice::Legacy),
        ] {
            let t: T = toml::from_str(&format!("d = \"{text}\"")).expect(text);
            assert_eq!(t.d, want, "{text}");
            assert_eq!(DriverChoice::from_str(text, false), Ok(want), "{text}");
        }
        assert!(toml::from_str::<T>("d = \"kqueue\"").is_err());
        assert!(DriverChoice::from_str("kqueue", false).is_err());
    }
}
