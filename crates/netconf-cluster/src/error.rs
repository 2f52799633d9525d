//! Errors in Ganeti's classes, with the texts and exit codes of Ganeti's `FormatError`, so
//! that scripts written against Ganeti's CLI read ours the same way.

use std::fmt;

use netconf::name::NameError;

/// Ganeti's error codes (`errors.ECODE_*`), printed after "error type:".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    Inval,
    State,
    NoEnt,
    Exists,
    NotUnique,
    Environ,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Inval => "wrong_input",
            ErrorCode::State => "wrong_state",
            ErrorCode::NoEnt => "unknown_entity",
            ErrorCode::Exists => "already_exists",
            ErrorCode::NotUnique => "resource_not_unique",
            ErrorCode::Environ => "environment_error",
        }
    }
}

/// One failed hook script: (node, script, output).
pub type HookFailure = (String, String, String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GntError {
    /// `OpPrereqError`: checks failed before anything changed.
    Prereq(ErrorCode, String),
    /// `OpExecError`.
    Exec(String),
    /// `TagError`.
    Tag(String),
    /// `ConfigurationError`: config.data is unreadable, corrupt, or from a newer version.
    Config(String),
    /// A pre hook failed.
    HooksAbort(Vec<HookFailure>),
    /// A plain message for command-line misuse, printed as is.
    Usage(String),
}

impl GntError {
    pub fn prereq(code: ErrorCode, msg: impl Into<String>) -> Self {
        GntError::Prereq(code, msg.into())
    }

    pub fn inval(msg: impl Into<String>) -> Self {
        GntError::Prereq(ErrorCode::Inval, msg.into())
    }

    pub fn state(msg: impl Into<String>) -> Self {
        GntError::Prereq(ErrorCode::State, msg.into())
    }

    pub fn noent(msg: impl Into<String>) -> Self {
        GntError::Prereq(ErrorCode::NoEnt, msg.into())
    }

    /// Ganeti's opcode type check failure, e.g. `OP_NETWORK_ADD.gateway`.
    pub fn param(op: &str, field: &str) -> Self {
        GntError::inval(format!("Parameter '{op}.{field}' fails validation"))
    }

    /// The exit code Ganeti's CLI uses for this class.
    pub fn exit_code(&self) -> u8 {
        match self {
            GntError::Config(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for GntError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GntError::Prereq(code, msg) => write!(
                f,
                "Failure: prerequisites not met for this operation:\nerror type: {}, error details:\n{msg}",
                code.as_str()
            ),
            GntError::Exec(msg) => write!(f, "Failure: command execution error:\n{msg}"),
            GntError::Tag(msg) => write!(f, "Failure: invalid tag(s) given:\n{msg}"),
            GntError::Config(msg) => write!(f, "Corrupt configuration file: {msg}\nAborting."),
            GntError::HooksAbort(fails) => {
                f.write_str("Failure: hooks execution failed:")?;
                for (node, script, out) in fails {
                    if out.is_empty() {
                        write!(f, "\n  node: {node}, script: {script} (no output)")?;
                    } else {
                        write!(f, "\n  node: {node}, script: {script}, output: {out}")?;
                    }
                }
                Ok(())
            }
            GntError::Usage(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for GntError {}

pub type Result<T, E = GntError> = std::result::Result<T, E>;

/// A refused name as a command reports it. The names are node-side contracts and know
/// nothing of Ganeti's error classes, so the class is given here.
pub trait IntoGnt {
    /// The error a command reports, in Ganeti's class: an empty name fails the opcode's
    /// type check (`Parameter 'OP.field' fails validation`), any other bad name is
    /// `Invalid hostname '…'` (Ganeti's `GetNormalizedName`) or `Invalid <kind> name '…'`,
    /// all `wrong_input`.
    fn into_gnt(self, op: &str, field: &str) -> GntError;
}

impl IntoGnt for NameError {
    fn into_gnt(self, op: &str, field: &str) -> GntError {
        if self.empty {
            GntError::param(op, field)
        } else {
            GntError::inval(self.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_ganeti() {
        assert_eq!(
            GntError::noent("Network 'x' not found").to_string(),
            "Failure: prerequisites not met for this operation:\nerror type: unknown_entity, error details:\nNetwork 'x' not found"
        );
        assert_eq!(
            GntError::Exec("boom".into()).to_string(),
            "Failure: command execution error:\nboom"
        );
        let c = GntError::Config("bad".into());
        assert_eq!(c.to_string(), "Corrupt configuration file: bad\nAborting.");
        assert_eq!(c.exit_code(), 2);
        assert_eq!(GntError::Tag("Tags cannot be empty".into()).exit_code(), 1);
    }

    #[test]
    fn name_errors_are_in_ganetis_class() {
        use netconf::name::{GroupName, InstanceName};
        let e = InstanceName::parse("vm6\nMACSPOOF=1\nIP=203.0.113.77").unwrap_err();
        assert_eq!(
            e.into_gnt("OP_INSTANCE_CREATE", "instance_name"),
            GntError::inval(
                "Invalid hostname 'vm6\\nmacspoof=1\\nip=203.0.113.77': contains a control character ('\\n')"
            )
        );
        assert_eq!(
            GroupName::parse("")
                .unwrap_err()
                .into_gnt("OP_GROUP_ADD", "group_name"),
            GntError::param("OP_GROUP_ADD", "group_name")
        );
    }
}
