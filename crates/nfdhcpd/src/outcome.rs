//! What happens to one queued packet: a verdict, maybe a reply frame, and the name of the
//! counter it is accounted under.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not ours: the packet continues through the kernel as if nfdhcpd did not exist.
    Accept,
    /// Consumed (answered, or refused on a TAP nfdhcpd serves).
    Drop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// Full Ethernet frame to write on the client's TAP.
    pub reply: Option<Vec<u8>>,
    /// Counter key, e.g. "DHCPDISCOVER" or "spoofed".
    pub what: &'static str,
}

impl Outcome {
    pub fn accept(what: &'static str) -> Self {
        Outcome {
            verdict: Verdict::Accept,
            reply: None,
            what,
        }
    }
    pub fn drop(what: &'static str) -> Self {
        Outcome {
            verdict: Verdict::Drop,
            reply: None,
            what,
        }
    }
    pub fn reply(what: &'static str, frame: Vec<u8>) -> Self {
        Outcome {
            verdict: Verdict::Drop,
            reply: Some(frame),
            what,
        }
    }
}
