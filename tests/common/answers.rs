//! Checks on answers: what a test expects back, failing with the whole
//! answer when it is something else.

use prescient::proto::{AcquireResponse, Decision};
use tonic::{Code, Response, Status};

/// The response, which must be a grant.
pub fn granted(r: Result<Response<AcquireResponse>, Status>) -> AcquireResponse {
    let r = r.expect("Acquire failed").into_inner();
    assert_eq!(r.decision(), Decision::Granted, "{r:?}");
    r
}

/// The response, which must be a denial.
pub fn denied(r: Result<Response<AcquireResponse>, Status>) -> AcquireResponse {
    let r = r.expect("Acquire failed").into_inner();
    assert_eq!(r.decision(), Decision::Denied, "{r:?}");
    r
}

/// The call must fail with `code` and a message that starts with `field`
/// (the field it names).
pub fn code<T: std::fmt::Debug>(r: Result<T, Status>, code: Code, field: &str) {
    let s = r.expect_err("expected an error");
    assert_eq!(s.code(), code, "{s:?}");
    assert!(
        s.message().starts_with(field),
        "message should name {field}: {s:?}"
    );
}

/// `Code::Ok` for a grant (a denial fails the test), else the status code.
pub fn outcome(r: Result<Response<AcquireResponse>, Status>) -> Code {
    match r {
        Ok(r) => {
            let r = r.into_inner();
            assert_eq!(r.decision(), Decision::Granted, "{r:?}");
            Code::Ok
        }
        Err(s) => s.code(),
    }
}
