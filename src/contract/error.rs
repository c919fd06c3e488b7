//! Error bodies: `{"error": {"type": "...", "message": "...", ...}}`, one variant per
//! documented error type, each knowing its HTTP status.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One bad field in a `validation_error`. `field` is the canonical snake_case path, such as
/// `email` or `risk.country_of_residence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The wire wrapper around every error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
}

/// Every error the API documents, with the members each one carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ApiError {
    InvalidRequest {
        message: String,
    },
    Unauthorized {
        message: String,
    },
    NotFound {
        message: String,
    },
    CustomerConflict {
        message: String,
        conflicting_customer_id: Uuid,
        conflicting_external_id: Option<String>,
    },
    IdempotencyConflict {
        message: String,
    },
    IdempotencyInProgress {
        message: String,
    },
    ValidationError {
        message: String,
        errors: Vec<FieldError>,
    },
    RateLimited {
        message: String,
    },
    InternalError {
        message: String,
    },
    Unavailable {
        message: String,
    },
}

/// The `type` of an error without its members: what operators group dead letters by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    InvalidRequest,
    Unauthorized,
    NotFound,
    CustomerConflict,
    IdempotencyConflict,
    IdempotencyInProgress,
    ValidationError,
    RateLimited,
    InternalError,
    Unavailable,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::InvalidRequest,
        ErrorKind::Unauthorized,
        ErrorKind::NotFound,
        ErrorKind::CustomerConflict,
        ErrorKind::IdempotencyConflict,
        ErrorKind::IdempotencyInProgress,
        ErrorKind::ValidationError,
        ErrorKind::RateLimited,
        ErrorKind::InternalError,
        ErrorKind::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::NotFound => "not_found",
            ErrorKind::CustomerConflict => "customer_conflict",
            ErrorKind::IdempotencyConflict => "idempotency_conflict",
            ErrorKind::IdempotencyInProgress => "idempotency_in_progress",
            ErrorKind::ValidationError => "validation_error",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::InternalError => "internal_error",
            ErrorKind::Unavailable => "unavailable",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The HTTP status this error is answered with.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::NotFound => 404,
            ErrorKind::CustomerConflict
            | ErrorKind::IdempotencyConflict
            | ErrorKind::IdempotencyInProgress => 409,
            ErrorKind::ValidationError => 422,
            ErrorKind::RateLimited => 429,
            ErrorKind::InternalError => 500,
            ErrorKind::Unavailable => 503,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ApiError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ApiError::InvalidRequest { .. } => ErrorKind::InvalidRequest,
            ApiError::Unauthorized { .. } => ErrorKind::Unauthorized,
            ApiError::NotFound { .. } => ErrorKind::NotFound,
            ApiError::CustomerConflict { .. } => ErrorKind::CustomerConflict,
            ApiError::IdempotencyConflict { .. } => ErrorKind::IdempotencyConflict,
            ApiError::IdempotencyInProgress { .. } => ErrorKind::IdempotencyInProgress,
            ApiError::ValidationError { .. } => ErrorKind::ValidationError,
            ApiError::RateLimited { .. } => ErrorKind::RateLimited,
            ApiError::InternalError { .. } => ErrorKind::InternalError,
            ApiError::Unavailable { .. } => ErrorKind::Unavailable,
        }
    }

    pub fn status(&self) -> u16 {
        self.kind().status()
    }

    pub fn message(&self) -> &str {
        match self {
            ApiError::InvalidRequest { message }
            | ApiError::Unauthorized { message }
            | ApiError::NotFound { message }
            | ApiError::CustomerConflict { message, .. }
            | ApiError::IdempotencyConflict { message }
            | ApiError::IdempotencyInProgress { message }
            | ApiError::ValidationError { message, .. }
            | ApiError::RateLimited { message }
            | ApiError::InternalError { message }
            | ApiError::Unavailable { message } => message,
        }
    }

    /// A member-less error of `kind` with `message` (for the kinds that carry no extra members;
    /// the others are built directly).
    pub fn simple(kind: ErrorKind, message: impl Into<String>) -> Self {
        let message = message.into();
        match kind {
            ErrorKind::InvalidRequest => ApiError::InvalidRequest { message },
            ErrorKind::Unauthorized => ApiError::Unauthorized { message },
            ErrorKind::NotFound => ApiError::NotFound { message },
            ErrorKind::IdempotencyConflict => ApiError::IdempotencyConflict { message },
            ErrorKind::IdempotencyInProgress => ApiError::IdempotencyInProgress { message },
            ErrorKind::RateLimited => ApiError::RateLimited { message },
            ErrorKind::InternalError => ApiError::InternalError { message },
            ErrorKind::Unavailable => ApiError::Unavailable { message },
            ErrorKind::ValidationError => ApiError::ValidationError {
                message,
                errors: Vec::new(),
            },
            ErrorKind::CustomerConflict => ApiError::CustomerConflict {
                message,
                conflicting_customer_id: Uuid::nil(),
                conflicting_external_id: None,
            },
        }
    }

    /// A `validation_error` listing every bad field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let message = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        ApiError::ValidationError { message, errors }
    }

    pub fn into_body(self) -> ErrorBody {
        ErrorBody { error: self }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.kind(), self.status(), self.message())
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conflict_body_names_existing_customer_with_null_external_id() {
        let id = Uuid::from_u128(7);
        let body = ApiError::CustomerConflict {
            message: "m".into(),
            conflicting_customer_id: id,
            conflicting_external_id: None,
        }
        .into_body();
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(
            v,
            json!({"error": {"type": "customer_conflict", "message": "m",
                "conflicting_customer_id": id.to_string(), "conflicting_external_id": null}})
        );
        let back: ErrorBody = serde_json::from_value(v).unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn every_kind_has_its_documented_status_and_name() {
        let table = [
            ("invalid_request", 400),
            ("unauthorized", 401),
            ("not_found", 404),
            ("customer_conflict", 409),
            ("idempotency_conflict", 409),
            ("idempotency_in_progress", 409),
            ("validation_error", 422),
            ("rate_limited", 429),
            ("internal_error", 500),
            ("unavailable", 503),
        ];
        for (name, status) in table {
            let kind = ErrorKind::parse(name).unwrap();
            assert_eq!(kind.status(), status, "{name}");
            let err = ApiError::simple(kind, "x");
            assert_eq!(err.kind(), kind);
            assert_eq!(serde_json::to_value(&err).unwrap()["type"], name);
        }
    }

    #[test]
    fn validation_error_lists_fields() {
        let e = ApiError::validation(vec![
            FieldError::new("email", "bad"),
            FieldError::new("phone", "bad"),
        ]);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["errors"].as_array().unwrap().len(), 2);
        assert_eq!(v["errors"][1]["field"], "phone");
    }
}
