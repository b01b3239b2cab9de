//! The HTTP application: the routes with the widget's files as fallback, and the middleware
//! every request passes (request ids, origin check, CORS, body limit, tracing, metrics,
//! security headers); [`ops_app`] is the operations routes alone, for `ops_listen`.

use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::routes::{self, webhooks};
use crate::security;
use crate::state::AppState;
use crate::static_files::StaticFiles;

async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// The whole HTTP application: routes, the widget files as fallback, and middleware.
pub fn app(state: AppState) -> Router {
    let config = state.config.clone();
    let mut router = routes::router(&state)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .route_layer(security::no_store());
    router = match &config.serve_dir {
        Some(dir) => {
            let files = StaticFiles::new(dir);
            router.fallback(move |request: Request| async move { files.serve(request).await })
        }
        None => router.fallback(not_found),
    };
    let origins: Vec<HeaderValue> = config
        .allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ])
        .max_age(Duration::from_secs(600));
    // What CORS's `expose_headers` would add to every answer, but not an event stream's,
    // whose `EventSource` reads no header (`security::except_on_streams`).
    let expose = SetResponseHeaderLayer::overriding(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        security::except_on_streams(HeaderValue::from_static("x-request-id, retry-after")),
    );
    let trace = TraceLayer::new_for_http()
        // Path only: query strings (SSE tickets) and headers (Authorization) stay out of logs.
        .make_span_with(|request: &Request| {
            let request_id = request_id(request.headers());
            // A span lives as long as its response body: for an event stream, hours, and
            // about 0.4 KB each of thousands. A stream's request is logged here, with the
            // same fields, and runs without one.
            if routes::events::is_stream(request) {
                tracing::info!(method = %request.method(), path = %request.uri().path(), request_id = %request_id, "event stream requested");
                return tracing::Span::none();
            }
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %request_id)
        })
        .on_response(log_response)
        // A 5xx is its access line, with its code; the failure itself, where it is ours, is
        // logged where it happened (`ApiError`), once.
        .on_failure(());
    let router = router
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), check_origin))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(
            ServiceBuilder::new()
                .map_request(sanitize_request_id)
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(trace)
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(cors)
                .layer(expose),
        );
    // Outermost, so every answer has them, the middleware's own rejections included.
    security::with_headers(router, &config).with_state(state)
}

/// A request's one access line: its status, time and, refused, the error's code. An event
/// stream runs without a span (see above), so its id is taken from the answer.
fn log_response(response: &Response, latency: Duration, span: &tracing::Span) {
    let status = response.status().as_u16();
    let code = response
        .extensions()
        .get::<shared::api::ErrorCode>()
        .map(|code| code.name());
    if span.is_none() {
        let request_id = request_id(response.headers());
        tracing::info!(
            status,
            ?latency,
            code,
            request_id,
            "finished processing request"
        );
    } else {
        tracing::info!(status, ?latency, code, "finished processing request");
    }
}

/// The request's id as logged (set by the middleware before any handler runs).
pub fn request_id(headers: &axum::http::HeaderMap) -> &str {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
}

/// Keeps a client's `x-request-id` only if it is one plain token (`[A-Za-z0-9._-]{1,64}`):
/// it is echoed and logged, so newlines, forged log text or kilobytes are dropped, and the
/// request gets a fresh id instead.
fn sanitize_request_id(mut request: Request) -> Request {
    let ids = request.headers().get_all("x-request-id");
    let mut iter = ids.iter();
    let keep = match (iter.next(), iter.next()) {
        (Some(id), None) => valid_request_id(id.as_bytes()),
        (None, _) => true,
        _ => false,
    };
    if !keep {
        request.headers_mut().remove("x-request-id");
    }
    request
}

pub fn valid_request_id(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The operations routes (`/healthz`, `/readyz`, `/metrics`) alone, for `ops_listen`: an
/// address a load balancer and Prometheus reach and the public does not.
pub fn ops_app(state: AppState) -> Router {
    let config = state.config.clone();
    let router = routes::health::router()
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .route_layer(security::no_store())
        .fallback(not_found);
    security::with_headers(router, &config).with_state(state)
}

/// A request's body must arrive whole within `header_read_timeout` of its headers, or it is
/// answered 408 `request_timeout` and its connection closed. hyper times the headers only: a
/// client announcing 64 KiB and sending a byte a minute would hold a connection, a task and a
/// descriptor for as long as it liked (see `serve`). Every handler reads its whole body anyway
/// (at most `body_limit_bytes`; a webhook up to [`webhooks::MAX_BYTES`], no more than
/// [`webhooks::LARGE_AT_ONCE`] of them past `body_limit_bytes` at once), so it is read here,
/// against the clock, and handed on. Part of [`count_requests`], so its answers are counted.
async fn body_in_time(state: &AppState, request: Request) -> Result<Request, Response> {
    use axum::body::{Body, HttpBody};
    use futures_util::StreamExt;
    let usual = state.config.body_limit;
    let limit = if request.uri().path() == webhooks::PATH && request.method() == Method::POST {
        usual.max(webhooks::MAX_BYTES)
    } else {
        usual
    };
    if request.body().size_hint().lower() > limit as u64 {
        return Err(ApiError::PayloadTooLarge.into_response());
    }
    let (parts, body) = request.into_parts();
    let read = async {
        // Kept as the chunks came: a body in one chunk (the usual) is handed on uncopied.
        let mut chunks = Vec::new();
        let mut length = 0;
        let mut large: Option<(tokio::sync::SemaphorePermit<'_>, Instant, usize)> = None;
        let mut stream = body.into_data_stream();
        loop {
            // A body holding one of the few places for large ones must keep coming, at
            // `LARGE_MIN_RATE` at least: one that stalls or trickles gives its place up, or a
            // handful of such senders would keep Smart Glocal's large webhooks waiting until
            // their clock ran out.
            let next = match &large {
                Some((_, since, from)) => {
                    let held = since.elapsed();
                    let owed = held.as_secs_f64() * webhooks::LARGE_MIN_RATE as f64;
                    if held > webhooks::LARGE_STALL && ((length - from) as f64) < owed {
                        return Err(ApiError::RequestTimeout);
                    }
                    tokio::time::timeout(webhooks::LARGE_STALL, stream.next())
                        .await
                        .map_err(|_| ApiError::RequestTimeout)?
                }
                None => stream.next().await,
            };
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(|_| {
                ApiError::InvalidRequest("the request body could not be read".into())
            })?;
            length += chunk.len();
            if length > limit {
                return Err(ApiError::PayloadTooLarge);
            }
            if length > usual && large.is_none() {
                let place = state
                    .large_bodies
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                large = Some((place, Instant::now(), length));
            }
            chunks.push(chunk);
        }
        Ok(match chunks.len() {
            1 => chunks.swap_remove(0),
            _ => axum::body::Bytes::from(chunks.concat()),
        })
    };
    match tokio::time::timeout(state.config.header_read_timeout, read).await {
        Ok(Ok(whole)) => Ok(Request::from_parts(parts, Body::from(whole))),
        Ok(Err(ApiError::RequestTimeout)) | Err(_) => {
            let mut response = ApiError::RequestTimeout.into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(response)
        }
        Ok(Err(error)) => Err(error.into_response()),
    }
}

/// Browsers always say where a cross-site call comes from: refuse origins not configured.
async fn check_origin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.starts_with("/api/") || path.starts_with("/demo/") {
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let allowed = origin
                .to_str()
                .is_ok_and(|o| state.config.allowed_origins.iter().any(|a| a == o));
            if !allowed {
                return ApiError::OriginNotAllowed.into_response();
            }
        }
    }
    next.run(request).await
}

async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    // A request without a body (every event stream) goes straight on: the body's reading, its
    // clock and its chunks live in a box of their own, not in this future, which each request
    // holds until its answer begins.
    let response = if axum::body::HttpBody::is_end_stream(request.body()) {
        next.run(request).await
    } else {
        match Box::pin(body_in_time(&state, request)).await {
            Ok(request) => next.run(request).await,
            Err(refused) => refused,
        }
    };
    let elapsed = started.elapsed();
    state
        .metrics
        .observe_request(&route, &method, response.status().as_u16(), elapsed);
    tracing::debug!(elapsed_ms = %elapsed.as_millis(), "handled");
    response
}
