//! Users and their groups, looked up in the system databases once each.

use std::collections::HashMap;
use std::ffi::CString;

use nix::unistd::{User, getgrouplist};

use crate::config::Credentials;

/// Looks users up once each.
#[derive(Default)]
pub(super) struct UserCache(HashMap<String, Credentials>);

impl UserCache {
    pub(super) fn lookup(&mut self, name: &str) -> Result<Credentials, String> {
        if let Some(c) = self.0.get(name) {
            return Ok(c.clone());
        }
        let user = match User::from_name(name) {
            Ok(Some(user)) => user,
            Ok(None) => return Err(format!("no user named {name:?} in /etc/passwd")),
            Err(e) => return Err(format!("cannot look up user {name:?}: {e}")),
        };
        let cname = CString::new(name).map_err(|_| format!("bad user name {name:?}"))?;
        let groups = getgrouplist(&cname, user.gid).map_err(|e| format!("cannot list the groups of {name:?}: {e}"))?;
        let creds = Credentials {
            user: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            groups: groups.into_iter().map(|g| g.as_raw()).collect(),
            home: user.dir,
            shell: user.shell,
        };
        self.0.insert(name.to_string(), creds.clone());
        Ok(creds)
    }
}
