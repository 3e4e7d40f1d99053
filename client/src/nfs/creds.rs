//! Who makes a call: the AUTH_SYS credential the front end read from the call's header.

use codetta_oncrpc::Credential;

/// uid, primary gid and supplementary gids of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

impl Caller {
    /// AUTH_NONE callers are treated as nobody.
    pub fn nobody() -> Caller {
        Caller {
            uid: 65534,
            gid: 65534,
            gids: Vec::new(),
        }
    }

    /// The caller a call's credential names (nobody without AUTH_SYS).
    pub fn from_credential(cred: &Credential) -> Caller {
        match cred {
            Credential::Sys(sys) => Caller {
                uid: sys.uid,
                gid: sys.gid,
                gids: sys.gids.clone(),
            },
            Credential::None => Caller::nobody(),
        }
    }

    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.gids.contains(&gid)
    }
}
