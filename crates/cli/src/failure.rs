//! From library errors to a one-line message and an exit code (listed in `--help`).

use patchtrail_collect::CollectError;
use patchtrail_query::QueryError;
use patchtrail_store::StoreError;

pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_PARTIAL: u8 = 3;
pub const EXIT_ACCESS: u8 = 4;
pub const EXIT_FINDINGS: u8 = 5;
/// The run stopped at `--time-limit` and is suspended: `--resume` continues it.
pub const EXIT_SUSPENDED: u8 = 6;
/// Stopped by a signal (the shell convention for SIGINT).
pub const EXIT_STOPPED: u8 = 130;

#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub exit_code: u8,
}

impl Failure {
    pub fn bad_input(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            exit_code: EXIT_BAD_INPUT,
        }
    }

    pub fn other(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            exit_code: EXIT_FAILURE,
        }
    }
}

fn store_code(e: &StoreError) -> u8 {
    match e {
        StoreError::BadUrl { .. }
        | StoreError::LocalFolder { .. }
        | StoreError::NoSuchBucket { .. }
        | StoreError::NoCheckpoint { .. }
        | StoreError::NoCreateOnly { .. }
        | StoreError::ResumeTooLate { .. } => EXIT_BAD_INPUT,
        StoreError::Damaged { .. } => EXIT_FINDINGS,
        StoreError::AccessDenied { .. }
        | StoreError::KmsDenied { .. }
        | StoreError::Archived { .. } => EXIT_ACCESS,
        _ => EXIT_FAILURE,
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure {
            exit_code: store_code(&e),
            message: e.to_string(),
        }
    }
}

impl From<CollectError> for Failure {
    fn from(e: CollectError) -> Failure {
        let exit_code = match &e {
            CollectError::BadInput { .. }
            | CollectError::NoRegion
            | CollectError::UnknownRegion(_) => EXIT_BAD_INPUT,
            CollectError::NoCredentials(_)
            | CollectError::ExpiredCredentials(_)
            | CollectError::InvalidCredentials(_) => EXIT_ACCESS,
            CollectError::Aws { error, .. } if error.is_denied() => EXIT_ACCESS,
            CollectError::Store(s) => store_code(s),
            CollectError::Aws { .. } => EXIT_FAILURE,
            CollectError::Stopped => EXIT_STOPPED,
            CollectError::Suspended { .. } => EXIT_SUSPENDED,
        };
        Failure {
            message: e.to_string(),
            exit_code,
        }
    }
}

impl From<QueryError> for Failure {
    fn from(e: QueryError) -> Failure {
        let exit_code = match &e {
            QueryError::EmptyStore { .. }
            | QueryError::NoScope { .. }
            | QueryError::BeforeFirst { .. }
            | QueryError::BadInput { .. } => EXIT_BAD_INPUT,
            QueryError::Store(s) => store_code(s),
            QueryError::Engine(_) | QueryError::Render(_) => EXIT_FAILURE,
            QueryError::Damaged { .. } => EXIT_FINDINGS,
        };
        Failure {
            message: e.to_string(),
            exit_code,
        }
    }
}

impl From<patchtrail_schedule::ScheduleError> for Failure {
    fn from(e: patchtrail_schedule::ScheduleError) -> Failure {
        Failure::bad_input(e.to_string())
    }
}
