//! Reading request bodies within a limit: a larger body is a `413`, still read and
//! thrown away for a moment so that the client gets the answer.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, header};

use super::ApiError;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY: usize = 1024 * 1024;

/// Reads a request body of at most [`MAX_BODY`] bytes.
pub async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    read_body_up_to(headers, body, MAX_BODY).await
}

/// Reads a request body of at most `limit` bytes.
pub async fn read_body_up_to(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let mut stream = body.into_data_stream();
    if declared.is_some_and(|n| n > limit as u64) {
        if declared.is_some_and(|n| n <= DRAIN_LIMIT as u64) {
            drain(&mut stream, 0).await;
        }
        return Err(ApiError::TooLarge(limit));
    }
    let mut read = BytesMut::new();
    while let Some(piece) = stream.next().await {
        let piece =
            piece.map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}")))?;
        if read.len() + piece.len() > limit {
            drain(&mut stream, read.len() + piece.len()).await;
            return Err(ApiError::TooLarge(limit));
        }
        read.extend_from_slice(&piece);
    }
    Ok(read.freeze())
}

/// A refused body is still read and thrown away, up to this many bytes and
/// [`DRAIN_TIME`], so that a client still sending it gets the `413` rather than a
/// broken connection; beyond that the connection is simply closed.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

async fn drain(stream: &mut axum::body::BodyDataStream, mut seen: usize) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(piece)) = stream.next().await {
            seen += piece.len();
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_bodies_over_the_limit() {
        let big = Body::from(vec![b'x'; MAX_BODY + 1]);
        assert!(matches!(read_body(&HeaderMap::new(), big).await, Err(ApiError::TooLarge(_))));
        let ok = read_body(&HeaderMap::new(), Body::from("{}")).await.expect("small body");
        assert_eq!(&ok[..], b"{}");
    }
}
