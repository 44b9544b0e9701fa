/*
 * Test support for the C and C++ suites: a tiny blocking HTTP/1.1 client over POSIX sockets
 * (enough for http://127.0.0.1 and the reference server, which closes every connection), a
 * launcher for tests/testkit's `reference-server` binary, and the tokenvault transport
 * callback built on the client — the host doing the HTTP, as a game engine would.
 */
#ifndef TVT_SUPPORT_H
#define TVT_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tokenvault.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- HTTP client --------------------------------------------------------------------- */

typedef struct tvt_header {
  char *name;
  char *value;
} tvt_header;

typedef struct tvt_response {
  int status;
  tvt_header *headers;
  size_t header_count;
  uint8_t *body; /* NUL-terminated for convenience; body_len excludes the NUL */
  size_t body_len;
} tvt_response;

/* Result codes of tvt_http: 0 or a tv_transport_result failure. */
int tvt_http(const char *method, const char *url, const tvt_header *headers, size_t header_count,
             const uint8_t *body, size_t body_len, uint64_t timeout_ms, tvt_response *out);
void tvt_response_free(tvt_response *r);
const char *tvt_response_header(const tvt_response *r, const char *name);

/* ---- reference server ---------------------------------------------------------------- */

typedef struct tvt_server {
  pid_t pid;
  int stdin_fd;
  int port;
  char base_url[64];
} tvt_server;

/* The `reference-server` binary: $TV_REFERENCE_SERVER. */
const char *tvt_server_binary(void);
/* Start it with `--dialect <dialect>` plus `extra_args` (NULL-terminated, may be NULL). */
int tvt_server_start(tvt_server *s, const char *dialect, const char *const *extra_args);
void tvt_server_stop(tvt_server *s);
/* POST /test/login {"user":...}: the caller frees *out_access and *out_refresh. */
int tvt_server_login(const tvt_server *s, const char *user, char **out_access, char **out_refresh);
/* POST path with a JSON body; returns the HTTP status (or -1). */
int tvt_server_post(const tvt_server *s, const char *path, const char *json);
/* GET /test/stats and return the named counter (or -1). */
long tvt_server_stat(const tvt_server *s, const char *counter);
/* GET /protected with a bearer token; returns the HTTP status (or -1). */
int tvt_server_protected(const tvt_server *s, const char *access_token);

/* panva's oidc-provider (node $TV_OIDC_DIR/server.mjs --alg <alg>), in the same struct: it
 * prints `LISTENING <port>` and stops when its stdin closes (tvt_server_stop). */
int tvt_oidc_start(tvt_server *s, const char *alg);
/* The test-only bootstrap grant for `account` (public client `tokenvault-test`): the caller
 * frees *out_access and *out_refresh. */
int tvt_oidc_bootstrap(const tvt_server *s, const char *account, char **out_access, char **out_refresh);
/* POST with an empty body (e.g. "/test/next-sub?sub=x"); returns the HTTP status (or -1). */
int tvt_oidc_post(const tvt_server *s, const char *path_and_query);

/* A string value "key":"..." from a flat JSON text (malloc'd; NULL if absent). */
char *tvt_json_string(const char *json, const char *key);

/* ---- the transport callback ---------------------------------------------------------- */

typedef struct tvt_transport_stats {
  /* Updated atomically: the callback may run on several threads. */
  volatile long calls;
  volatile long failures;
  /* If set, called at the start of every exchange (on the refreshing thread). */
  void (*on_call)(void *ctx, const tv_http_request *request);
  void *on_call_ctx;
} tvt_transport_stats;

/* A tv_transport_fn: user_data is a tvt_transport_stats* (or NULL). */
int32_t tvt_transport(void *user_data, const tv_http_request *request, tv_http_response *response);
/* Perform a tv_http_request with the client (the two-step refresh's "send it yourself"). */
int tvt_perform(const tv_http_request *request, tvt_response *out);

/* ---- misc ---------------------------------------------------------------------------- */

/* A fresh temporary directory (malloc'd path); tvt_rmdir removes it and its files. */
char *tvt_tempdir(void);
void tvt_rmdir(char *dir);
/* This thread's last error message (static per thread, truncated at 1 KiB). */
const char *tvt_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* TVT_SUPPORT_H */
