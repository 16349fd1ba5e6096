//! Staff roles. What each may do is decided in `auth` (deny by default).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including users, API keys, sites and completion rules.
    Admin,
    /// QA, developer feedback, delete.
    Developer,
    /// View and QA.
    Qa,
    /// View, take over and reply.
    Agent,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Developer, Role::Qa, Role::Agent];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Qa => "qa",
            Role::Agent => "agent",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?}: expected admin, developer, qa or agent")]
pub struct UnknownRole(String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// Who may do what, by role (the route table and the sockets share these).
/// Roles that handle conversations: status, escalations, takeover, replies.
pub const HANDLERS: &[Role] = &[Role::Admin, Role::Developer, Role::Agent];
/// Roles that review the AI's work.
pub const REVIEWERS: &[Role] = &[Role::Admin, Role::Developer, Role::Qa];
/// Roles that may give developer feedback and delete.
pub const DEVELOPERS: &[Role] = &[Role::Admin, Role::Developer];
/// Roles that manage users, keys, sites and rules.
pub const ADMINS: &[Role] = &[Role::Admin];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_round_trips_through_its_name() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
