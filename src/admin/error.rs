//! Admin API errors: `application/problem+json` (RFC 9457) with a stable `code`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};

/// The stable code table of the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unauthorized,
    Forbidden,
    HostNotAllowed,
    OriginNotAllowed,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PreconditionFailed,
    PreconditionRequired,
    InvalidEntry,
    /// A configuration (body, patch, file) that does not validate.
    InvalidConfig,
    Invalid,
    MalformedJson,
    PayloadTooLarge,
    BodyTimeout,
    UnsupportedMediaType,
    TooManyRequests,
    Storage,
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthorized => "unauthorized",
            Code::Forbidden => "forbidden",
            Code::HostNotAllowed => "host_not_allowed",
            Code::OriginNotAllowed => "origin_not_allowed",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::Conflict => "conflict",
            Code::PreconditionFailed => "precondition_failed",
            Code::PreconditionRequired => "precondition_required",
            Code::InvalidEntry => "invalid_entry",
            Code::InvalidConfig => "invalid_config",
            Code::Invalid => "invalid_request",
            Code::MalformedJson => "malformed_json",
            Code::PayloadTooLarge => "payload_too_large",
            Code::BodyTimeout => "body_timeout",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::TooManyRequests => "too_many_requests",
            Code::Storage => "storage_unavailable",
            Code::Internal => "internal",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Forbidden | Code::HostNotAllowed | Code::OriginNotAllowed => {
                StatusCode::FORBIDDEN
            }
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::Conflict => StatusCode::CONFLICT,
            Code::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Code::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            Code::InvalidEntry | Code::Invalid | Code::InvalidConfig => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Code::MalformedJson => StatusCode::BAD_REQUEST,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::Storage => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub detail: String,
    pub hint: Option<String>,
    /// Problem details extension: the individual problems (config issues).
    pub errors: Option<Value>,
}

impl ApiError {
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: detail.into(),
            hint: None,
            errors: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn errors(mut self, errors: Value) -> Self {
        self.errors = Some(errors);
        self
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(Code::NotFound, detail)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.code.status();
        let mut body = json!({
            "type": format!("https://clawgate.dev/problems/{}", self.code.as_str()),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "code": self.code.as_str(),
            "detail": self.detail,
        });
        if let Some(h) = &self.hint {
            body["hint"] = json!(h);
        }
        if let Some(e) = &self.errors {
            body["errors"] = e.clone();
        }
        let mut resp = HttpResponse::build(status);
        resp.content_type("application/problem+json");
        if self.code == Code::Unauthorized {
            resp.insert_header(("WWW-Authenticate", "Bearer realm=\"clawgate-admin\""));
        }
        resp.body(body.to_string())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "store error in the admin API");
        ApiError::new(Code::Storage, e.to_string())
            .hint("check the state directory (disk space, permissions) and retry")
    }
}

impl From<crate::gateway::ops::OpError> for ApiError {
    fn from(e: crate::gateway::ops::OpError) -> Self {
        use crate::gateway::ops::{OpError, OpKind};
        if let OpError::Store(s) = e {
            return s.into();
        }
        let code = match e.kind() {
            OpKind::NotFound => Code::NotFound,
            OpKind::Conflict => Code::Conflict,
            OpKind::Invalid => Code::Invalid,
            OpKind::Store => Code::Storage,
        };
        ApiError::new(code, e.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

macro_rules! via_store {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self {
                crate::store::StoreError::from(e).into()
            }
        }
    )*};
}
via_store!(redb::TableError, redb::StorageError);
