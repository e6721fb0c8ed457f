//! supervisord's XML-RPC faults: the codes of `supervisor.xmlrpc.Faults`, and their text as
//! supervisord writes it (`BAD_NAME: web`), which clients such as supervisorctl match on.

/// A fault code, as `supervisor/xmlrpc.py` numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// No such method.
    UnknownMethod = 1,
    /// Wrong number of parameters.
    IncorrectParameters = 2,
    /// A parameter of the wrong type or value.
    BadArguments = 3,
    /// supd is shutting down and takes no more changes.
    ShutdownState = 6,
    /// No program or group of that name.
    BadName = 10,
    /// No signal of that name or number.
    BadSignal = 11,
    /// The log asked for, or the program's command, does not exist.
    NoFile = 20,
    /// The program's command is not executable.
    NotExecutable = 21,
    /// The verb could not be carried out.
    Failed = 30,
    /// The program exited while it was being started.
    AbnormalTermination = 40,
    /// The program could not be spawned.
    SpawnError = 50,
    /// `start` of a program that already runs.
    AlreadyStarted = 60,
    /// `stop` or `signal` of a program that does not run.
    NotRunning = 70,
    /// Success, in the result arrays of the group methods.
    Success = 80,
    /// `addProcessGroup` of a group that is there.
    AlreadyAdded = 90,
    /// `removeProcessGroup` of a group with a program that runs.
    StillRunning = 91,
    /// `reloadConfig` of a config that does not load.
    CantReread = 92,
}

impl Code {
    /// The name supervisord gives it.
    pub const fn name(self) -> &'static str {
        match self {
            Code::UnknownMethod => "UNKNOWN_METHOD",
            Code::IncorrectParameters => "INCORRECT_PARAMETERS",
            Code::BadArguments => "BAD_ARGUMENTS",
            Code::ShutdownState => "SHUTDOWN_STATE",
            Code::BadName => "BAD_NAME",
            Code::BadSignal => "BAD_SIGNAL",
            Code::NoFile => "NO_FILE",
            Code::NotExecutable => "NOT_EXECUTABLE",
            Code::Failed => "FAILED",
            Code::AbnormalTermination => "ABNORMAL_TERMINATION",
            Code::SpawnError => "SPAWN_ERROR",
            Code::AlreadyStarted => "ALREADY_STARTED",
            Code::NotRunning => "NOT_RUNNING",
            Code::Success => "SUCCESS",
            Code::AlreadyAdded => "ALREADY_ADDED",
            Code::StillRunning => "STILL_RUNNING",
            Code::CantReread => "CANT_REREAD",
        }
    }
}

/// A fault to answer a call with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Which.
    pub code: Code,
    /// supervisord's text: the code's name, then `: ` and what it is about, if anything.
    pub text: String,
}

impl Fault {
    /// A fault `code` about `about` (a program name, say); `about` may be empty.
    pub fn new(code: Code, about: impl AsRef<str>) -> Self {
        let about = about.as_ref();
        let text = if about.is_empty() { code.name().to_string() } else { format!("{}: {about}", code.name()) };
        Self { code, text }
    }
}

impl From<Fault> for dxr::Fault {
    fn from(f: Fault) -> Self {
        dxr::Fault::new(f.code as i32, f.text)
    }
}
