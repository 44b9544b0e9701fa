/*
 * The C ABI from C: the whole cycle against tests/testkit's reference server (seed 001 dialect)
 * through a C transport callback on POSIX sockets, through the two-step refresh and through
 * the built-in transport; events and re-entrancy from callbacks; and the error paths (NULL,
 * invalid UTF-8, wrong key, buffer too small, use after close, the panic export).
 *
 *   TV_REFERENCE_SERVER=target/debug/reference-server ./test_c_api
 *
 * Also run under AddressSanitizer and valgrind by bindings/c/run-tests.sh.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenvault.h"
#include "support/tvt_support.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                                        \
  do {                                                                                     \
    checks++;                                                                              \
    if (!(cond)) {                                                                         \
      failures++;                                                                          \
      fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, __LINE__, #cond, \
              tvt_last_error());                                                           \
    }                                                                                      \
  } while (0)

#define CHECK_STATUS(expr, expected)                                                         \
  do {                                                                                       \
    checks++;                                                                                \
    tv_status st_ = (expr);                                                                  \
    if (st_ != (expected)) {                                                                 \
      failures++;                                                                            \
      fprintf(stderr, "%s:%d: %s returned %s, expected %s (last error: %s)\n", __FILE__,     \
              __LINE__, #expr, tv_status_name(st_), tv_status_name(expected), tvt_last_error()); \
    }                                                                                        \
  } while (0)

static const uint8_t KEY[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
/* "spieler-ä😀": the account id round-trips as UTF-8. */
static const char *ACCOUNT2 = "spieler-\xc3\xa4\xf0\x9f\x98\x80";

/* ---- callbacks ----------------------------------------------------------------------- */

static int destroyed_transport = 0;
static int destroyed_events = 0;
static void destroy_transport(void *p) { (void)p; destroyed_transport++; }
static void destroy_events(void *p) { (void)p; destroyed_events++; }

typedef struct events {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refreshed, expired, removed;
  char last_reason[256];
  const tv_vault *vault;
  char account[64];
  /* Re-entrancy from the event thread. */
  int reentrant_reads_ok;
  int reentrant_refresh_done;
  int first_refresh_returned;
  tv_status reentrant_refresh_status;
} events;

static void on_event(void *user_data, const tv_event *ev) {
  events *e = (events *)user_data;
  /* Re-enter the vault from its event thread, outside our own lock: a read, facts, and once,
   * a blocking refresh (whose own event is queued behind this one). None may deadlock. */
  int reads_ok = 0, do_refresh = 0;
  if (ev->kind == TV_EVENT_TOKEN_REFRESHED) {
    char token[4096];
    size_t len = 0;
    tv_session_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    reads_ok = tv_vault_access_token_copy(e->vault, ev->account, 0, token, sizeof token, &len, NULL) == TV_OK &&
               tv_vault_session_info(e->vault, ev->account, &info) == TV_OK && info.generation >= ev->generation;
    pthread_mutex_lock(&e->mu);
    do_refresh = !e->reentrant_refresh_done;
    e->reentrant_refresh_done = 1;
    pthread_mutex_unlock(&e->mu);
  }
  tv_status refresh_status = TV_OK;
  if (do_refresh) {
    /* Wait until the refresh that emitted this event has returned to its caller: the core emits
     * the event just before it ends the refresh's flight, and a forced refresh that joins the
     * ending flight is refused as "did not produce a new token" (reported to the core). */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 5;
    pthread_mutex_lock(&e->mu);
    while (!e->first_refresh_returned && pthread_cond_timedwait(&e->cv, &e->mu, &deadline) == 0) {
    }
    pthread_mutex_unlock(&e->mu);
    tv_buf t = {0};
    refresh_status = tv_vault_force_refresh(e->vault, ev->account, &t, NULL);
    if (refresh_status != TV_OK) fprintf(stderr, "refresh from the event thread: %s\n", tvt_last_error());
    tv_buf_free(&t);
  }
  pthread_mutex_lock(&e->mu);
  if (ev->kind == TV_EVENT_TOKEN_REFRESHED) {
    e->refreshed++;
    e->reentrant_reads_ok += reads_ok;
    if (do_refresh) e->reentrant_refresh_status = refresh_status;
  } else if (ev->kind == TV_EVENT_SESSION_EXPIRED) {
    e->expired++;
    snprintf(e->last_reason, sizeof e->last_reason, "%s", ev->reason ? ev->reason : "(null)");
  } else if (ev->kind == TV_EVENT_SESSION_REMOVED) {
    e->removed++;
  }
  snprintf(e->account, sizeof e->account, "%s", ev->account);
  pthread_cond_broadcast(&e->cv);
  pthread_mutex_unlock(&e->mu);
}

/* Wait until *counter >= n (5 s at most); returns whether it got there. */
static int wait_events(events *e, int *counter, int n) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 5;
  pthread_mutex_lock(&e->mu);
  while (*counter < n) {
    if (pthread_cond_timedwait(&e->cv, &e->mu, &deadline) != 0) break;
  }
  int ok = *counter >= n;
  pthread_mutex_unlock(&e->mu);
  return ok;
}

typedef struct reenter_ctx {
  const tv_vault *vault;
  const char *account;
  int ok;
} reenter_ctx;

/* Runs inside the transport callback, on the refreshing thread: non-blocking calls into the
 * same vault for the same account must work (no vault lock is held while the transport runs). */
static void reenter_from_transport(void *ctx, const tv_http_request *request) {
  (void)request;
  reenter_ctx *r = (reenter_ctx *)ctx;
  tv_session_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  tv_account_list *list = NULL;
  int ok = tv_vault_session_info(r->vault, r->account, &info) == TV_OK &&
           tv_vault_list_accounts(r->vault, &list) == TV_OK;
  tv_account_list_free(list);
  __atomic_store_n(&r->ok, ok, __ATOMIC_SEQ_CST);
}

/* ---- helpers ------------------------------------------------------------------------- */

static char *copy_token(const tv_vault *v, const char *account) {
  char buf[4096];
  size_t len = 0;
  if (tv_vault_access_token_copy(v, account, 0, buf, sizeof buf, &len, NULL) != TV_OK) return NULL;
  return strdup(buf);
}

static tv_status store(const tv_vault *v, const char *account, const char *access, const char *refresh,
                       tv_session_info *out) {
  tv_session_params p;
  memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.account = account;
  p.profile = "game";
  p.access_token = access;
  p.refresh_credential = refresh;
  p.expires_in_secs = -1;
  p.refresh_expires_in_secs = -1;
  p.token_type = "Bearer";
  p.hints_json = "{\"display_name\":\"Ada\"}";
  if (out) {
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
  }
  return tv_vault_store(v, &p, out);
}

static char *db_path(const char *dir) {
  char *p = (char *)malloc(strlen(dir) + 16);
  sprintf(p, "%s/vault.db", dir);
  return p;
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_static_functions_and_null_checks(void) {
  CHECK(strlen(tv_version()) > 0);
  CHECK(strcmp(tv_status_name(TV_OK), "ok") == 0);
  CHECK(strcmp(tv_status_name(TV_WRONG_KEY), "wrong_key") == 0);
  CHECK(strcmp(tv_status_name(TV_CLOSED), "closed") == 0);
  CHECK(strcmp(tv_status_name(999), "unknown") == 0);
  CHECK(TV_OK == 0 && TV_INTERNAL == 10 && TV_CLOSED == 13);

  tv_vault *v = (tv_vault *)0x1; /* must stay untouched on failure */
  CHECK_STATUS(tv_vault_open_with_key(NULL, KEY, 32, &v), TV_INVALID_INPUT);
  CHECK(strstr(tvt_last_error(), "path") != NULL);
  CHECK_STATUS(tv_vault_open_with_key("/tmp/x.db", NULL, 32, &v), TV_INVALID_INPUT);
  CHECK_STATUS(tv_vault_open_with_key("/tmp/x.db", KEY, 32, NULL), TV_INVALID_INPUT);
  CHECK_STATUS(tv_vault_open_with_key("/tmp/x.db", KEY, 31, &v), TV_INVALID_INPUT);
  CHECK_STATUS(tv_vault_open_with_key("/tmp/\xff\xfe.db", KEY, 32, &v), TV_INVALID_INPUT);
  CHECK(strstr(tvt_last_error(), "UTF-8") != NULL);
  CHECK_STATUS(tv_vault_open_with_passphrase("/tmp/x.db", "", &v), TV_INVALID_INPUT);
  CHECK(v == (tv_vault *)0x1);

  char buf[16];
  size_t len = 0;
  tv_buf b = {0};
  CHECK_STATUS(tv_vault_access_token_copy(NULL, "a", 0, buf, sizeof buf, &len, NULL), TV_INVALID_INPUT);
  CHECK(strstr(tvt_last_error(), "vault") != NULL);
  CHECK_STATUS(tv_vault_access_token(NULL, "a", 0, &b, NULL), TV_INVALID_INPUT);
  CHECK_STATUS(tv_vault_close(NULL), TV_INVALID_INPUT);
  CHECK_STATUS(tv_vault_set_transport(NULL, tvt_transport, NULL, NULL), TV_INVALID_INPUT);
  CHECK_STATUS(tv_http_request_url(NULL, NULL), TV_INVALID_INPUT);
  CHECK_STATUS(tv_account_list_count(NULL, &len), TV_INVALID_INPUT);

  /* Every _free accepts NULL. */
  tv_vault_free(NULL);
  tv_buf_free(NULL);
  tv_buf_free(&b);
  tv_http_request_free(NULL);
  tv_account_list_free(NULL);

  /* A panic inside the boundary comes back as TV_INTERNAL, with a message, and the process
   * goes on. */
  CHECK_STATUS(tv_test_panic(), TV_INTERNAL);
  CHECK(strstr(tvt_last_error(), "panic") != NULL);
  CHECK_STATUS(tv_test_panic(), TV_INTERNAL);

  /* The last error buffer protocol. */
  size_t need = 0;
  CHECK_STATUS(tv_last_error_message(NULL, 0, &need), TV_INVALID_INPUT);
  CHECK(need > 0);
  char *msg = (char *)malloc(need + 1);
  size_t got = 0;
  CHECK_STATUS(tv_last_error_message(msg, need + 1, &got), TV_OK);
  CHECK(got == need && strlen(msg) == need);
  free(msg);
}

static void test_full_cycle(void) {
  tvt_server srv;
  if (tvt_server_start(&srv, "001", NULL) != 0) {
    CHECK(!"reference server started");
    return;
  }
  char *dir = tvt_tempdir();
  char *path = db_path(dir);
  char *access = NULL, *refresh = NULL;
  CHECK(tvt_server_login(&srv, "ada", &access, &refresh) == 0);

  tv_vault *v = NULL;
  CHECK_STATUS(tv_vault_open_with_key(path, KEY, sizeof KEY, &v), TV_OK);
  if (!v) goto out;

  /* Profiles. */
  char profile[512];
  snprintf(profile, sizeof profile,
           "{\"preset\":\"rotating-success-envelope\",\"name\":\"game\",\"url\":\"%s/v2/Auth/RefreshToken\"}",
           srv.base_url);
  CHECK_STATUS(tv_vault_load_profile_json(v, profile), TV_OK);
  CHECK_STATUS(tv_vault_load_profile_json(v, "{\"preset\":\"nope\"}"), TV_INVALID_INPUT);
  CHECK_STATUS(tv_vault_load_profile_json(v, "not json"), TV_INVALID_INPUT);

  /* Callbacks: the host's HTTP client, and events. */
  tvt_transport_stats ts;
  memset(&ts, 0, sizeof ts);
  reenter_ctx rc = {v, "ada", 0};
  ts.on_call = reenter_from_transport;
  ts.on_call_ctx = &rc;
  CHECK_STATUS(tv_vault_set_transport(v, tvt_transport, &ts, destroy_transport), TV_OK);
  events ev;
  memset(&ev, 0, sizeof ev);
  pthread_mutex_init(&ev.mu, NULL);
  pthread_cond_init(&ev.cv, NULL);
  ev.vault = v;
  CHECK_STATUS(tv_vault_set_event_callback(v, on_event, &ev, destroy_events), TV_OK);

  /* Store. */
  tv_session_info info;
  CHECK_STATUS(store(v, "ada", access, refresh, &info), TV_OK);
  CHECK(info.generation > 0);
  CHECK(info.state == TV_SESSION_FRESH);
  CHECK(info.has_refresh_credential == 1);
  CHECK(info.access_remaining_ms > 50000 && info.access_remaining_ms <= 60000);
  tv_session_params bad;
  memset(&bad, 0, sizeof bad);
  bad.struct_size = 3;
  CHECK_STATUS(tv_vault_store(v, &bad, NULL), TV_INVALID_INPUT);
  CHECK(strstr(tvt_last_error(), "struct_size") != NULL);
  CHECK_STATUS(store(v, "ada", "", refresh, NULL), TV_INVALID_INPUT);
  CHECK_STATUS(store(v, "ada", access, refresh, NULL), TV_OK);

  /* Read: copy, too small, Rust-owned buffer. */
  char buf[4096];
  size_t len = 0;
  uint64_t gen = 0;
  CHECK_STATUS(tv_vault_access_token_copy(v, "ada", 0, buf, sizeof buf, &len, &gen), TV_OK);
  CHECK(strcmp(buf, access) == 0 && len == strlen(access) && gen > info.generation);
  char small[8];
  memset(small, 'x', sizeof small);
  size_t need = 0;
  CHECK_STATUS(tv_vault_access_token_copy(v, "ada", 0, small, sizeof small, &need, NULL), TV_INVALID_INPUT);
  CHECK(need == strlen(access) && small[0] == 'x');
  CHECK(strstr(tvt_last_error(), access) == NULL);
  need = 0;
  CHECK_STATUS(tv_vault_access_token_copy(v, "ada", 0, NULL, 0, &need, NULL), TV_INVALID_INPUT);
  CHECK(need == strlen(access));
  CHECK_STATUS(tv_vault_access_token_copy(v, "ada", 0, buf, need + 1, &len, NULL), TV_OK);
  tv_buf tok = {0};
  CHECK_STATUS(tv_vault_access_token(v, "ada", 0, &tok, NULL), TV_OK);
  CHECK(tok.data && strcmp(tok.data, access) == 0 && tok.len == strlen(access));
  tv_buf_free(&tok);
  CHECK(tok.data == NULL && tok.len == 0);
  /* A wrong len cannot make tv_buf_free free the wrong size (ASan and valgrind watch this):
   * the library frees by the length it stored, and says the caller's was wrong. */
  size_t wrong_lens[] = {0, 1, 4096, (size_t)-1};
  for (size_t i = 0; i < sizeof wrong_lens / sizeof wrong_lens[0]; i++) {
    CHECK_STATUS(tv_vault_access_token(v, "ada", 0, &tok, NULL), TV_OK);
    tok.len = wrong_lens[i];
    tv_buf_free(&tok);
    CHECK(tok.data == NULL && tok.len == 0);
    CHECK(strstr(tvt_last_error(), "true length") != NULL);
  }
  CHECK_STATUS(tv_vault_access_token_copy(v, "\xc3\x28", 0, buf, sizeof buf, &len, NULL), TV_INVALID_INPUT);
  CHECK_STATUS(tv_vault_access_token_copy(v, "nobody", 0, buf, sizeof buf, &len, NULL), TV_NOT_FOUND);
  CHECK_STATUS(tv_vault_access_token_copy(v, "ada", 0, buf, sizeof buf, NULL, NULL), TV_INVALID_INPUT);
  CHECK(tvt_server_protected(&srv, access) == 200);
  CHECK(ts.calls == 0);

  /* The generation check: unchanged hands out nothing; an unknown generation gets the token. */
  uint64_t known = 0;
  uint8_t changed = 9;
  CHECK_STATUS(tv_vault_token_if_changed(v, "ada", 0, 0, &tok, &known, &changed), TV_OK);
  CHECK(changed == 1 && known == gen && tok.data && strcmp(tok.data, access) == 0 && tok.len == strlen(access));
  tv_buf_free(&tok);
  uint64_t same = 0;
  tok.data = (char *)0x1; /* must be reset */
  CHECK_STATUS(tv_vault_token_if_changed(v, "ada", 1000, known, &tok, &same, &changed), TV_OK);
  CHECK(changed == 0 && same == known && tok.data == NULL && tok.len == 0);
  changed = 9;
  CHECK_STATUS(tv_vault_token_if_changed(v, "ada", 0, known, &tok, NULL, &changed), TV_INVALID_INPUT);
  CHECK_STATUS(tv_vault_token_if_changed(v, "ada", 0, known, &tok, &same, NULL), TV_INVALID_INPUT);
  CHECK_STATUS(tv_vault_token_if_changed(v, "\xc3\x28", 0, known, &tok, &same, &changed), TV_INVALID_INPUT);
  CHECK_STATUS(tv_vault_token_if_changed(v, "nobody", 0, known, &tok, &same, &changed), TV_NOT_FOUND);
  CHECK(changed == 9);

  /* Forced refresh through the C transport callback. */
  char *old = strdup(access);
  tv_buf current_tok = {0};
  CHECK_STATUS(tv_vault_force_refresh(v, "ada", &tok, &gen), TV_OK);
  CHECK(tok.data && strcmp(tok.data, old) != 0);
  CHECK(ts.calls == 1 && rc.ok == 1);
  /* After the refresh, the old generation is "changed" and comes with the new token. */
  CHECK_STATUS(tv_vault_token_if_changed(v, "ada", 0, known, &current_tok, &same, &changed), TV_OK);
  CHECK(changed == 1 && same == gen && same > known && current_tok.data && tok.data && strcmp(current_tok.data, tok.data) == 0);
  tv_buf_free(&current_tok);
  tv_buf_free(&tok);
  pthread_mutex_lock(&ev.mu);
  ev.first_refresh_returned = 1;
  pthread_cond_broadcast(&ev.cv);
  pthread_mutex_unlock(&ev.mu);

  /* Events arrive on the event thread; the callback re-entered the vault (a read, and a blocking
   * refresh from the event thread, which emits the second event) without deadlock. */
  CHECK(wait_events(&ev, &ev.refreshed, 2));
  CHECK(ev.reentrant_reads_ok >= 1);
  CHECK_STATUS(ev.reentrant_refresh_status, TV_OK);
  CHECK(strcmp(ev.account, "ada") == 0);
  CHECK(ts.calls == 2);
  CHECK(tvt_server_stat(&srv, "refresh_successes") == 2);
  char *current = copy_token(v, "ada");
  CHECK(current && tvt_server_protected(&srv, current) == 200);

  /* A 401 reported with an older token returns the current one without a refresh. */
  CHECK_STATUS(tv_vault_report_rejected(v, "ada", old, &tok, NULL), TV_OK);
  CHECK(tok.data && current && strcmp(tok.data, current) == 0);
  CHECK(ts.calls == 2);
  tv_buf_free(&tok);
  /* Reported with the current one: refreshed, once. */
  CHECK_STATUS(tv_vault_report_rejected(v, "ada", current, &tok, NULL), TV_OK);
  CHECK(tok.data && strcmp(tok.data, current) != 0);
  CHECK(ts.calls == 3);
  tv_buf_free(&tok);
  CHECK(wait_events(&ev, &ev.refreshed, 3));

  /* Session facts. */
  CHECK_STATUS(tv_vault_session_info(v, "ada", &info), TV_OK);
  CHECK(info.refresh_count == 3 && info.state == TV_SESSION_FRESH && info.last_failure_status == TV_OK);
  tv_buf json = {0};
  CHECK_STATUS(tv_vault_session_info_json(v, "ada", &json), TV_OK);
  CHECK(json.data && strstr(json.data, "\"refresh_count\":3") && strstr(json.data, "\"display_name\":\"Ada\"") &&
        strstr(json.data, "\"profile\":\"game\"") && strstr(json.data, "\"token_type\":\"Bearer\""));
  tv_buf_free(&json);
  info.struct_size = 0;
  CHECK_STATUS(tv_vault_session_info(v, "ada", &info), TV_INVALID_INPUT);
  info.struct_size = sizeof info;

  /* A transient failure (503) keeps the session and its token. */
  free(current);
  current = copy_token(v, "ada");
  CHECK(tvt_server_post(&srv, "/test/fault", "{\"fault\":\"status\",\"status\":503}") == 200);
  CHECK_STATUS(tv_vault_force_refresh(v, "ada", &tok, NULL), TV_TRANSIENT);
  CHECK(tok.data == NULL);
  char *after = copy_token(v, "ada");
  CHECK(after && current && strcmp(after, current) == 0);
  free(after);
  CHECK_STATUS(tv_vault_session_info(v, "ada", &info), TV_OK);
  CHECK(info.last_failure_status == TV_TRANSIENT);

  /* Two-step refresh: the host sends the request itself. */
  tv_refresh_step step = TV_REFRESH_IN_FLIGHT;
  uint64_t attempt = 0;
  tv_http_request *req = NULL;
  CHECK_STATUS(tv_vault_begin_refresh(v, "ada", 0, &step, &attempt, &req), TV_OK);
  CHECK(step == TV_REFRESH_FRESH && req == NULL && attempt == 0);
  CHECK_STATUS(tv_vault_begin_refresh(v, "ada", 1, &step, &attempt, &req), TV_OK);
  CHECK(step == TV_REFRESH_SEND && req != NULL && attempt != 0);
  if (req) {
    const char *method = NULL, *url = NULL, *name = NULL, *value = NULL;
    size_t count = 0, max = 0;
    const uint8_t *body = NULL;
    size_t body_len = 0;
    CHECK_STATUS(tv_http_request_method(req, &method), TV_OK);
    CHECK(method && strcmp(method, "POST") == 0);
    CHECK_STATUS(tv_http_request_url(req, &url), TV_OK);
    CHECK(url && strstr(url, "/v2/Auth/RefreshToken") != NULL);
    CHECK_STATUS(tv_http_request_header_count(req, &count), TV_OK);
    CHECK(count >= 1);
    CHECK_STATUS(tv_http_request_header(req, 0, &name, &value), TV_OK);
    CHECK(name && value);
    CHECK_STATUS(tv_http_request_header(req, count, &name, &value), TV_INVALID_INPUT);
    CHECK_STATUS(tv_http_request_body(req, &body, &body_len), TV_OK);
    CHECK(body_len > 0 && body[body_len] == 0 && strstr((const char *)body, "refreshToken") != NULL);
    CHECK_STATUS(tv_http_request_max_response_bytes(req, &max), TV_OK);
    CHECK(max >= 1024);
    tvt_response resp;
    CHECK(tvt_perform(req, &resp) == 0);
    tv_http_request_free(req);
    tv_http_header *hs = (tv_http_header *)calloc(resp.header_count + 1, sizeof *hs);
    for (size_t i = 0; i < resp.header_count; i++) {
      hs[i].name = resp.headers[i].name;
      hs[i].value = resp.headers[i].value;
    }
    CHECK_STATUS(tv_vault_finish_refresh(v, attempt, (uint16_t)resp.status, hs, resp.header_count, resp.body,
                                         resp.body_len, &tok, &gen),
                 TV_OK);
    CHECK(tok.data && strcmp(tok.data, current) != 0);
    CHECK(tvt_server_protected(&srv, tok.data) == 200);
    tv_buf_free(&tok);
    /* The attempt is finished: a second answer is refused. */
    CHECK_STATUS(tv_vault_finish_refresh(v, attempt, (uint16_t)resp.status, hs, resp.header_count, resp.body,
                                         resp.body_len, &tok, NULL),
                 TV_INVALID_INPUT);
    CHECK_STATUS(tv_vault_finish_refresh(v, attempt, 200, NULL, 1, NULL, 0, &tok, NULL), TV_INVALID_INPUT);
    free(hs);
    tvt_response_free(&resp);
  }
  CHECK(ts.calls == 4); /* three refreshes and the 503; the host did the two-step one itself */

  /* Two-step, failing on the network: a forced refresh reports TV_TRANSIENT. */
  CHECK_STATUS(tv_vault_begin_refresh(v, "ada", 1, &step, &attempt, &req), TV_OK);
  CHECK(step == TV_REFRESH_SEND);
  tv_http_request_free(req);
  CHECK_STATUS(tv_vault_fail_refresh(v, attempt, 0, &tok, NULL), TV_INVALID_INPUT);
  CHECK_STATUS(tv_vault_fail_refresh(v, attempt, TV_TRANSPORT_CONNECT, &tok, NULL), TV_TRANSIENT);

  /* The built-in transport (ureq) replaces the callback; the callback's user data is destroyed. */
  CHECK_STATUS(tv_vault_set_transport(v, NULL, NULL, NULL), TV_OK);
  CHECK(destroyed_transport == 1);
  long before = tvt_server_stat(&srv, "refresh_successes");
  CHECK_STATUS(tv_vault_force_refresh(v, "ada", &tok, NULL), TV_OK);
  CHECK(tvt_server_stat(&srv, "refresh_successes") == before + 1);
  CHECK(tok.data && tvt_server_protected(&srv, tok.data) == 200);
  tv_buf tok2 = {0};
  CHECK_STATUS(tv_vault_report_rejected(v, "ada", tok.data, &tok2, NULL), TV_OK);
  CHECK(tvt_server_stat(&srv, "refresh_successes") == before + 2);
  CHECK(tok2.data && tok.data && strcmp(tok2.data, tok.data) != 0);
  tv_buf_free(&tok);
  tv_buf_free(&tok2);
  CHECK(ts.calls == 4);

  /* Accounts, UTF-8 round trip, remove. */
  char *access2 = NULL, *refresh2 = NULL;
  CHECK(tvt_server_login(&srv, "zoe", &access2, &refresh2) == 0);
  CHECK_STATUS(store(v, ACCOUNT2, access2, refresh2, NULL), TV_OK);
  tv_account_list *list = NULL;
  size_t n = 0;
  const char *a0 = NULL, *a1 = NULL;
  CHECK_STATUS(tv_vault_list_accounts(v, &list), TV_OK);
  CHECK_STATUS(tv_account_list_count(list, &n), TV_OK);
  CHECK(n == 2);
  CHECK_STATUS(tv_account_list_get(list, 0, &a0), TV_OK);
  CHECK_STATUS(tv_account_list_get(list, 1, &a1), TV_OK);
  CHECK(a0 && a1 && strcmp(a0, "ada") == 0 && strcmp(a1, ACCOUNT2) == 0);
  CHECK_STATUS(tv_account_list_get(list, 2, &a0), TV_INVALID_INPUT);
  tv_account_list_free(list);
  uint8_t existed = 9;
  CHECK_STATUS(tv_vault_remove(v, ACCOUNT2, &existed), TV_OK);
  CHECK(existed == 1);
  CHECK(wait_events(&ev, &ev.removed, 1));
  CHECK(strcmp(ev.account, ACCOUNT2) == 0);
  CHECK_STATUS(tv_vault_remove(v, ACCOUNT2, &existed), TV_OK);
  CHECK(existed == 0);
  CHECK_STATUS(tv_vault_remove(v, ACCOUNT2, NULL), TV_OK);
  free(access2);
  free(refresh2);

  /* Server-side logout: the refresh is refused, the session needs a new sign-in. */
  free(current);
  current = copy_token(v, "ada");
  char revoke[4096];
  snprintf(revoke, sizeof revoke, "{\"token\":\"%s\"}", current ? current : "");
  CHECK(tvt_server_post(&srv, "/test/revoke", revoke) == 200);
  CHECK_STATUS(tv_vault_force_refresh(v, "ada", &tok, NULL), TV_REAUTHENTICATION_REQUIRED);
  CHECK(current && strstr(tvt_last_error(), current) == NULL);
  CHECK(wait_events(&ev, &ev.expired, 1));
  CHECK(strlen(ev.last_reason) > 0 && strcmp(ev.last_reason, "(null)") != 0);
  CHECK_STATUS(tv_vault_session_info(v, "ada", &info), TV_OK);
  CHECK(info.state == TV_SESSION_REAUTHENTICATION_REQUIRED);

  /* Rekey, then use after close. */
  CHECK_STATUS(tv_vault_rekey_with_passphrase(v, "correct horse battery staple"), TV_OK);
  CHECK_STATUS(tv_vault_close(v), TV_OK);
  CHECK_STATUS(tv_vault_close(v), TV_OK);
  CHECK_STATUS(tv_vault_access_token_copy(v, "ada", 0, buf, sizeof buf, &len, NULL), TV_CLOSED);
  CHECK_STATUS(tv_vault_force_refresh(v, "ada", &tok, NULL), TV_CLOSED);
  CHECK_STATUS(store(v, "ada", access, refresh, NULL), TV_CLOSED);
  CHECK_STATUS(tv_vault_list_accounts(v, &list), TV_CLOSED);
  CHECK_STATUS(tv_vault_set_transport(v, tvt_transport, NULL, destroy_transport), TV_CLOSED);
  CHECK_STATUS(tv_vault_set_event_callback(v, on_event, &ev, destroy_events), TV_CLOSED);
  CHECK_STATUS(tv_vault_begin_refresh(v, "ada", 1, &step, &attempt, &req), TV_CLOSED);
  CHECK(destroyed_transport == 1 && destroyed_events == 0);
  tv_vault_free(v);
  v = NULL;
  CHECK(destroyed_transport == 1 && destroyed_events == 1);

  /* Reopen. Until the first open with the new passphrase, the key the rekey replaced still
   * opens (a host that crashed before saving the new key is not locked out). */
  CHECK_STATUS(tv_vault_open_with_passphrase(path, "wrong passphrase", &v), TV_WRONG_KEY);
  CHECK(v == NULL);
  CHECK_STATUS(tv_vault_open_with_key(path, KEY, sizeof KEY, &v), TV_OK);
  tv_vault_free(v);
  v = NULL;
  CHECK_STATUS(tv_vault_open_with_passphrase(path, "correct horse battery staple", &v), TV_OK);
  if (v) {
    /* That open confirmed the new passphrase: the old key opens nothing any more. */
    tv_vault *old_key = NULL;
    CHECK_STATUS(tv_vault_open_with_key(path, KEY, sizeof KEY, &old_key), TV_WRONG_KEY);
    CHECK(old_key == NULL);
    CHECK_STATUS(tv_vault_list_accounts(v, &list), TV_OK);
    CHECK_STATUS(tv_account_list_count(list, &n), TV_OK);
    CHECK(n == 1);
    tv_account_list_free(list);
    CHECK_STATUS(tv_vault_rekey_with_key(v, KEY, sizeof KEY), TV_OK);
    CHECK_STATUS(tv_vault_rekey_with_key(v, KEY, 16), TV_INVALID_INPUT);
    tv_vault_free(v); /* without tv_vault_close: free closes */
    v = NULL;
  }
  CHECK_STATUS(tv_vault_open_with_key(path, KEY, sizeof KEY, &v), TV_OK);
  tv_vault_free(v);
  v = NULL;

  pthread_mutex_destroy(&ev.mu);
  pthread_cond_destroy(&ev.cv);
  free(old);
  free(current);
out:
  tv_vault_free(v);
  free(access);
  free(refresh);
  free(path);
  tvt_rmdir(dir);
  tvt_server_stop(&srv);
}

/* Many threads reading while one refreshes: every read succeeds, refreshes are single-flight. */
typedef struct reader_arg {
  const tv_vault *vault;
  int ok;
} reader_arg;

static void *reader(void *p) {
  reader_arg *a = (reader_arg *)p;
  char buf[4096];
  size_t len;
  for (int i = 0; i < 2000; i++)
    if (tv_vault_access_token_copy(a->vault, "ada", 0, buf, sizeof buf, &len, NULL) == TV_OK) a->ok++;
  return NULL;
}

static void test_concurrent_reads(void) {
  tvt_server srv;
  const char *args[] = {"--access-ttl-ms", "60000", NULL};
  if (tvt_server_start(&srv, "002", args) != 0) {
    CHECK(!"reference server started");
    return;
  }
  char *dir = tvt_tempdir();
  char *path = db_path(dir);
  char *access = NULL, *refresh = NULL;
  CHECK(tvt_server_login(&srv, "ada", &access, &refresh) == 0);
  tv_vault *v = NULL;
  CHECK_STATUS(tv_vault_open_with_key(path, KEY, sizeof KEY, &v), TV_OK);
  if (v) {
    char profile[512];
    snprintf(profile, sizeof profile,
             "{\"preset\":\"rotating-bearer-versioned\",\"name\":\"game\",\"url\":\"%s/User/RefreshToken\"}",
             srv.base_url);
    CHECK_STATUS(tv_vault_load_profile_json(v, profile), TV_OK);
    tvt_transport_stats ts;
    memset(&ts, 0, sizeof ts);
    CHECK_STATUS(tv_vault_set_transport(v, tvt_transport, &ts, NULL), TV_OK);
    CHECK_STATUS(store(v, "ada", access, refresh, NULL), TV_OK);
    pthread_t th[4];
    reader_arg args4[4];
    for (int i = 0; i < 4; i++) {
      args4[i].vault = v;
      args4[i].ok = 0;
      pthread_create(&th[i], NULL, reader, &args4[i]);
    }
    tv_buf tok = {0};
    CHECK_STATUS(tv_vault_force_refresh(v, "ada", &tok, NULL), TV_OK);
    tv_buf_free(&tok);
    for (int i = 0; i < 4; i++) {
      pthread_join(th[i], NULL);
      CHECK(args4[i].ok == 2000);
    }
    CHECK(ts.calls == 1);
    CHECK(tvt_server_stat(&srv, "refresh_successes") == 1);
    tv_vault_free(v);
  }
  free(access);
  free(refresh);
  free(path);
  tvt_rmdir(dir);
  tvt_server_stop(&srv);
}

/* ---- the host anchor ------------------------------------------------------------------- */

typedef struct {
  uint64_t counter;
  int present;
  int stores;
  int fail_load;
  int destroyed;
} anchor_state;

static int32_t anchor_load(void *user_data, uint64_t *out_counter, int32_t *out_present) {
  anchor_state *a = (anchor_state *)user_data;
  if (a->fail_load) return 4;
  *out_counter = a->counter;
  *out_present = a->present;
  return TV_OK;
}

static int32_t anchor_store(void *user_data, uint64_t counter) {
  anchor_state *a = (anchor_state *)user_data;
  a->counter = counter;
  a->present = 1;
  a->stores++;
  return TV_OK;
}

static void anchor_destroy(void *user_data) { ((anchor_state *)user_data)->destroyed++; }

static int copy_file(const char *from, const char *to) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  int ok = in && out;
  char b[8192];
  size_t n;
  while (ok && (n = fread(b, 1, sizeof b, in)) > 0) ok = fwrite(b, 1, n, out) == n;
  if (in) fclose(in);
  if (out) fclose(out);
  return ok;
}

static void test_anchor_and_move_session(void) {
  char *dir = tvt_tempdir();
  char *path = db_path(dir);
  char backup[1024];
  snprintf(backup, sizeof backup, "%s/backup.db", dir);
  anchor_state st;
  memset(&st, 0, sizeof st);
  tv_anchor anchor;
  memset(&anchor, 0, sizeof anchor);
  anchor.struct_size = sizeof anchor;
  anchor.load = anchor_load;
  anchor.store = anchor_store;
  anchor.user_data = &st;
  anchor.destroy = anchor_destroy;

  tv_anchor bad = anchor;
  bad.struct_size = 8;
  tv_vault *v = NULL;
  CHECK_STATUS(tv_vault_open_with_key_anchored(path, KEY, sizeof KEY, &bad, &v), TV_INVALID_INPUT);
  CHECK_STATUS(tv_vault_open_with_key_anchored(path, KEY, sizeof KEY, NULL, &v), TV_INVALID_INPUT);

  CHECK_STATUS(tv_vault_open_with_key_anchored(path, KEY, sizeof KEY, &anchor, &v), TV_OK);
  if (v) {
    CHECK_STATUS(tv_vault_load_profile_json(
                     v, "{\"preset\":\"oauth2\",\"name\":\"game\",\"url\":\"http://127.0.0.1:9/token\","
                        "\"client_id\":\"c\"}"),
                 TV_OK);
    CHECK_STATUS(store(v, "ada", "access-1", "refresh-1", NULL), TV_OK);
    /* The profile now points elsewhere: the session's credential is not sent there... */
    CHECK_STATUS(tv_vault_load_profile_json(
                     v, "{\"preset\":\"oauth2\",\"name\":\"game\",\"url\":\"http://127.0.0.1:10/token\","
                        "\"client_id\":\"c\"}"),
                 TV_OK);
    tv_buf tok = {0};
    CHECK_STATUS(tv_vault_force_refresh(v, "ada", &tok, NULL), TV_INVALID_INPUT);
    CHECK(strstr(tvt_last_error(), "move_session") != NULL);
    /* ...until the host moves it (then the request goes out, and fails: nothing listens). */
    CHECK_STATUS(tv_vault_move_session(v, "ada", "game"), TV_OK);
    CHECK_STATUS(tv_vault_force_refresh(v, "ada", &tok, NULL), TV_TRANSIENT);
    CHECK_STATUS(tv_vault_move_session(v, "nobody", "game"), TV_NOT_FOUND);
    CHECK_STATUS(tv_vault_move_session(v, "ada", NULL), TV_INVALID_INPUT);
    tv_vault_free(v);
    v = NULL;
  }
  CHECK(st.destroyed == 1 && st.present && st.stores >= 2);
  CHECK(copy_file(path, backup));

  st.destroyed = 0;
  CHECK_STATUS(tv_vault_open_with_key_anchored(path, KEY, sizeof KEY, &anchor, &v), TV_OK);
  if (v) {
    CHECK_STATUS(tv_vault_load_profile_json(
                     v, "{\"preset\":\"oauth2\",\"name\":\"game\",\"url\":\"http://127.0.0.1:10/token\","
                        "\"client_id\":\"c\"}"),
                 TV_OK);
    CHECK_STATUS(store(v, "ada", "access-2", "refresh-2", NULL), TV_OK);
    tv_vault_free(v);
    v = NULL;
  }
  /* The whole file restored from the older copy: refused with the anchor, user_data kept. */
  CHECK(copy_file(backup, path));
  st.destroyed = 0;
  CHECK_STATUS(tv_vault_open_with_key_anchored(path, KEY, sizeof KEY, &anchor, &v), TV_CORRUPT);
  CHECK(v == NULL && st.destroyed == 0);
  st.fail_load = 1;
  CHECK_STATUS(tv_vault_open_with_key_anchored(path, KEY, sizeof KEY, &anchor, &v), TV_STORAGE_UNAVAILABLE);
  CHECK(v == NULL && st.destroyed == 0);
  /* Without the anchor the old copy is consistent and opens (the limit SECURITY.md states). */
  CHECK_STATUS(tv_vault_open_with_key(path, KEY, sizeof KEY, &v), TV_OK);
  tv_vault_free(v);
  free(path);
  tvt_rmdir(dir);
}

/* ---- open options, metrics, log callback ---------------------------------------------- */

typedef struct log_capture {
  pthread_mutex_t mu;
  char lines[64 * 1024];
  size_t used;
  int count;
  int above_level; /* lines more verbose than max_level */
  int max_level;
  int destroyed;
} log_capture;

static void on_log(void *user_data, int32_t level, const char *target, const char *message) {
  log_capture *c = (log_capture *)user_data;
  pthread_mutex_lock(&c->mu);
  c->count++;
  if (level > c->max_level) c->above_level++;
  int n = snprintf(c->lines + c->used, sizeof c->lines - c->used, "%d %s %s\n", level, target, message);
  if (n > 0 && c->used + (size_t)n < sizeof c->lines) c->used += (size_t)n;
  pthread_mutex_unlock(&c->mu);
}

static void on_log_destroy(void *user_data) { ((log_capture *)user_data)->destroyed++; }

static int file_exists(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f) fclose(f);
  return f != NULL;
}

static void test_options_metrics_and_logs(void) {
  tvt_server srv;
  if (tvt_server_start(&srv, "001", NULL) != 0) {
    CHECK(!"reference server started");
    return;
  }
  char *dir = tvt_tempdir();
  char *path = db_path(dir);
  const char *account = "acct-7f3e91";
  char *access = NULL, *refresh = NULL;
  CHECK(tvt_server_login(&srv, account, &access, &refresh) == 0);

  /* Defaults come from the library. */
  tv_open_options o;
  memset(&o, 0, sizeof o);
  CHECK_STATUS(tv_open_options_init(&o), TV_OK);
  CHECK(o.struct_size == sizeof o && o.refresh_point == 0.75 && o.jitter == 0.05 && o.min_ttl_cap == 0.5);
  CHECK(o.expiry_margin_ms == 5000 && o.busy_timeout_ms == 5000 && o.anchor == NULL);
  CHECK_STATUS(tv_open_options_init(NULL), TV_INVALID_INPUT);

  /* Invalid values: TV_INVALID_INPUT, and no file is created. */
  tv_vault *v = NULL;
  tv_open_options bad = o;
  bad.refresh_point = 2.0;
  CHECK_STATUS(tv_vault_open_with_options(path, KEY, sizeof KEY, NULL, &bad, &v), TV_INVALID_INPUT);
  bad = o;
  bad.jitter = 0.5;
  CHECK_STATUS(tv_vault_open_with_options(path, KEY, sizeof KEY, NULL, &bad, &v), TV_INVALID_INPUT);
  bad = o;
  bad.min_ttl_cap = 0.0;
  CHECK_STATUS(tv_vault_open_with_options(path, KEY, sizeof KEY, NULL, &bad, &v), TV_INVALID_INPUT);
  bad = o;
  bad.busy_timeout_ms = 3600 * 1000;
  CHECK_STATUS(tv_vault_open_with_options(path, KEY, sizeof KEY, NULL, &bad, &v), TV_INVALID_INPUT);
  bad = o;
  bad.struct_size = sizeof o + 8;
  CHECK_STATUS(tv_vault_open_with_options(path, KEY, sizeof KEY, NULL, &bad, &v), TV_INVALID_INPUT);
  CHECK(strstr(tvt_last_error(), "struct_size") != NULL);
  CHECK_STATUS(tv_vault_open_with_options(path, KEY, sizeof KEY, "pass", &o, &v), TV_INVALID_INPUT);
  CHECK_STATUS(tv_vault_open_with_options(path, NULL, 0, NULL, &o, &v), TV_INVALID_INPUT);
  CHECK_STATUS(tv_vault_open_with_options(path, KEY, sizeof KEY, NULL, NULL, &v), TV_INVALID_INPUT);
  CHECK(v == NULL && !file_exists(path));

  /* Logs: every line of the cycle at TRACE reaches the callback, none holds a secret. */
  static log_capture logs;
  memset(&logs, 0, sizeof logs);
  pthread_mutex_init(&logs.mu, NULL);
  logs.max_level = TV_LOG_TRACE;
  CHECK_STATUS(tv_set_log_callback(9, on_log, &logs, on_log_destroy), TV_INVALID_INPUT);
  CHECK_STATUS(tv_set_log_callback(TV_LOG_TRACE, on_log, &logs, on_log_destroy), TV_OK);

  o.refresh_point = 0.05;
  o.jitter = 0.0;
  o.busy_timeout_ms = 1000;
  CHECK_STATUS(tv_vault_open_with_options(path, KEY, sizeof KEY, NULL, &o, &v), TV_OK);
  if (!v) goto out;
  char profile[512];
  snprintf(profile, sizeof profile,
           "{\"preset\":\"rotating-success-envelope\",\"name\":\"game\",\"url\":\"%s/v2/Auth/RefreshToken\"}",
           srv.base_url);
  CHECK_STATUS(tv_vault_load_profile_json(v, profile), TV_OK);
  tvt_transport_stats ts;
  memset(&ts, 0, sizeof ts);
  CHECK_STATUS(tv_vault_set_transport(v, tvt_transport, &ts, NULL), TV_OK);

  /* The options apply: refresh point 5 % of a 20 s token, so due after 1 s (default: 15 s). */
  tv_session_params p;
  memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.account = "short";
  p.profile = "game";
  p.access_token = "short-lived-access";
  p.refresh_credential = "short-lived-refresh";
  p.expires_in_secs = 20;
  p.refresh_expires_in_secs = -1;
  CHECK_STATUS(tv_vault_store(v, &p, NULL), TV_OK);
  struct timespec ts_sleep = {1, 200 * 1000 * 1000};
  nanosleep(&ts_sleep, NULL);
  tv_session_info si;
  memset(&si, 0, sizeof si);
  si.struct_size = sizeof si;
  CHECK_STATUS(tv_vault_session_info(v, "short", &si), TV_OK);
  CHECK(si.state == TV_SESSION_REFRESH_DUE);

  /* Metrics: cached hits, one refresh through the transport. */
  CHECK_STATUS(store(v, account, access, refresh, NULL), TV_OK);
  char buf[4096];
  size_t len = 0;
  for (int i = 0; i < 10; i++) {
    CHECK_STATUS(tv_vault_access_token_copy(v, account, 0, buf, sizeof buf, &len, NULL), TV_OK);
  }
  tv_buf tok = {0};
  CHECK_STATUS(tv_vault_force_refresh(v, account, &tok, NULL), TV_OK);
  char *rotated = tok.data ? strdup(tok.data) : NULL;
  tv_buf_free(&tok);
  tv_metrics m;
  memset(&m, 0, sizeof m);
  m.struct_size = 8;
  CHECK_STATUS(tv_vault_metrics(v, &m), TV_INVALID_INPUT);
  m.struct_size = sizeof m;
  CHECK_STATUS(tv_vault_metrics(v, &m), TV_OK);
  CHECK(m.cached_hits == 10);
  CHECK(m.refreshes_started == 1 && m.refreshes_succeeded == 1 && m.refreshes_failed == 0);
  CHECK(m.transport_requests == 1 && m.response_bytes > 100);
  CHECK(m.transport_latency_p50_us > 0 && m.transport_latency_p99_us >= m.transport_latency_p50_us);

  /* A refused credential: counted under its code. Only warnings and errors reach the log now. */
  logs.max_level = TV_LOG_WARN;
  CHECK_STATUS(tv_set_log_callback(TV_LOG_WARN, on_log, &logs, on_log_destroy), TV_OK);
  CHECK(logs.destroyed == 1); /* the replaced registration released its user_data */
  CHECK_STATUS(tv_vault_force_refresh(v, "short", &tok, NULL), TV_REAUTHENTICATION_REQUIRED);
  CHECK_STATUS(tv_vault_metrics(v, &m), TV_OK);
  CHECK(m.refreshes_started == 2 && m.refreshes_failed == 1);
  CHECK(m.refreshes_failed_by_code[TV_REAUTHENTICATION_REQUIRED] == 1);
  CHECK(logs.above_level == 0);

  CHECK_STATUS(tv_set_log_callback(TV_LOG_TRACE, NULL, NULL, NULL), TV_OK);
  CHECK(logs.destroyed == 2);
  int before = logs.count;
  CHECK_STATUS(tv_vault_force_refresh(v, account, &tok, NULL), TV_OK);
  tv_buf_free(&tok);
  CHECK(logs.count == before);
  CHECK_STATUS(tv_vault_close(v), TV_OK);
  CHECK_STATUS(tv_vault_metrics(v, &m), TV_OK);
  CHECK(m.refreshes_succeeded == 2);
  tv_vault_free(v);

  CHECK(logs.count >= 5);
  CHECK(strstr(logs.lines, "tokenvault") != NULL);
  /* The vault's own debug lines reach the host from the release library, which compiles the
     other crates' debug records out. */
  CHECK(strstr(logs.lines, "4 tokenvault::vault stored a session") != NULL);
  CHECK(strstr(logs.lines, access) == NULL && strstr(logs.lines, refresh) == NULL);
  CHECK(rotated == NULL || strstr(logs.lines, rotated) == NULL);
  CHECK(strstr(logs.lines, account) == NULL && strstr(logs.lines, "short-lived") == NULL);
  free(rotated);
out:
  free(access);
  free(refresh);
  free(path);
  tvt_rmdir(dir);
  tvt_server_stop(&srv);
}

/* ---- store_response and an epoch expires_in ------------------------------------------- */

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void test_store_response_and_epoch_expires_in(void) {
  tvt_server srv;
  if (tvt_server_start(&srv, "001", NULL) != 0) {
    CHECK(!"reference server started");
    return;
  }
  char *dir = tvt_tempdir();
  char *path = db_path(dir);
  tv_vault *v = NULL;
  CHECK_STATUS(tv_vault_open_with_key(path, KEY, sizeof KEY, &v), TV_OK);
  if (!v) goto out;
  char profile[512];
  snprintf(profile, sizeof profile,
           "{\"preset\":\"rotating-success-envelope\",\"name\":\"game\",\"url\":\"%s/v2/Auth/RefreshToken\"}",
           srv.base_url);
  CHECK_STATUS(tv_vault_load_profile_json(v, profile), TV_OK);
  tvt_transport_stats ts;
  memset(&ts, 0, sizeof ts);
  CHECK_STATUS(tv_vault_set_transport(v, tvt_transport, &ts, NULL), TV_OK);

  /* The server's own login answer (its dialect's body and its Date header), stored as is. */
  char url[256];
  snprintf(url, sizeof url, "%s/test/login", srv.base_url);
  const char *login = "{\"user\":\"ada\",\"answer\":\"dialect\"}";
  tvt_header ct = {"Content-Type", "application/json"};
  tvt_response r;
  memset(&r, 0, sizeof r);
  CHECK(tvt_http("POST", url, &ct, 1, (const uint8_t *)login, strlen(login), 5000, &r) == 0 && r.status == 200);
  char *access = tvt_json_string((const char *)r.body, "accessToken");
  tv_session_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  CHECK_STATUS(tv_vault_store_response(v, "ada", "game", r.body, r.body_len, tvt_response_header(&r, "date"), NULL,
                                       &info),
               TV_OK);
  CHECK(info.has_refresh_credential == 1 && info.access_remaining_ms > 50000 && info.access_remaining_ms <= 60000);
  char *tok = copy_token(v, "ada");
  CHECK(tok && access && strcmp(tok, access) == 0);
  free(tok);
  tv_buf rotated = {0};
  CHECK_STATUS(tv_vault_force_refresh(v, "ada", &rotated, NULL), TV_OK);
  CHECK(rotated.data && tvt_server_protected(&srv, rotated.data) == 200);
  tv_buf_free(&rotated);
  /* A second credential besides the one in the answer; a failure body; NULL arguments. */
  CHECK_STATUS(tv_vault_store_response(v, "bob", "game", r.body, r.body_len, NULL, "extra", NULL), TV_INVALID_INPUT);
  const char *failure = "{\"success\":false,\"error\":{\"type\":\"AUTHENTICATION\",\"message\":\"no\"}}";
  CHECK_STATUS(tv_vault_store_response(v, "bob", "game", (const uint8_t *)failure, strlen(failure), NULL, NULL, NULL),
               TV_PROTOCOL);
  CHECK_STATUS(tv_vault_store_response(v, NULL, "game", r.body, r.body_len, NULL, NULL, NULL), TV_INVALID_INPUT);
  CHECK_STATUS(tv_vault_session_info(v, "bob", &info), TV_NOT_FOUND);
  free(access);
  tvt_response_free(&r);

  /* expires_in as seed 003 writes it: an absolute Java timestamp (epoch milliseconds), 2 s
   * ahead. The vault schedules the refresh at 75 % of that, then refreshes. */
  char *acc2 = NULL, *ref2 = NULL;
  CHECK(tvt_server_login(&srv, "eve", &acc2, &ref2) == 0);
  tv_session_params p;
  memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.account = "eve";
  p.profile = "game";
  p.access_token = acc2;
  p.refresh_credential = ref2;
  p.expires_in_secs = now_ms() + 2000;
  p.refresh_expires_in_secs = -1;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  CHECK_STATUS(tv_vault_store(v, &p, &info), TV_OK);
  /* Server time is the JWT's iat (whole seconds): up to 1 s behind the device here. */
  CHECK(info.access_remaining_ms > 1000 && info.access_remaining_ms <= 3000);
  uint64_t first_gen = info.generation;
  long before = tvt_server_stat(&srv, "refresh_successes");
  struct timespec pause = {2, 500 * 1000 * 1000}; /* due by then whatever the iat rounding */
  nanosleep(&pause, NULL);
  char buf[4096];
  size_t len = 0;
  uint64_t gen = 0;
  CHECK_STATUS(tv_vault_access_token_copy(v, "eve", 0, buf, sizeof buf, &len, &gen), TV_OK);
  CHECK(gen > first_gen && strcmp(buf, acc2) != 0);
  CHECK(tvt_server_stat(&srv, "refresh_successes") == before + 1);
  free(acc2);
  free(ref2);
  tv_vault_free(v);
out:
  free(path);
  tvt_rmdir(dir);
  tvt_server_stop(&srv);
}

/* ---- logout with revocation (RFC 7009) ------------------------------------------------ */

static void test_remove_and_revoke(void) {
  tvt_server srv;
  if (tvt_server_start(&srv, "001", NULL) != 0) {
    CHECK(!"reference server started");
    return;
  }
  char *dir = tvt_tempdir();
  char *path = db_path(dir);
  tv_vault *v = NULL;
  CHECK_STATUS(tv_vault_open_with_key(path, KEY, sizeof KEY, &v), TV_OK);
  if (!v) goto out;
  char profile[512];
  snprintf(profile, sizeof profile,
           "{\"preset\":\"rotating-success-envelope\",\"name\":\"game\",\"url\":\"%s/v2/Auth/RefreshToken\","
           "\"revocation_url\":\"/oauth/revoke\"}",
           srv.base_url);
  CHECK_STATUS(tv_vault_load_profile_json(v, profile), TV_OK);
  char *access = NULL, *refresh = NULL;
  CHECK(tvt_server_login(&srv, "ada", &access, &refresh) == 0);
  CHECK_STATUS(store(v, "ada", access, refresh, NULL), TV_OK);
  uint8_t existed = 0;
  CHECK_STATUS(tv_vault_remove_and_revoke(v, "ada", &existed), TV_OK);
  CHECK(existed == 1);
  CHECK_STATUS(tv_vault_remove_and_revoke(v, NULL, NULL), TV_INVALID_INPUT);
  /* Sent in the background: wait until the queue is empty (10 s at most). */
  tv_buf json = {0};
  int empty = 0;
  for (int i = 0; i < 500 && !empty; i++) {
    CHECK_STATUS(tv_vault_pending_revocations_json(v, &json), TV_OK);
    empty = json.data && strstr(json.data, "\"pending\":[]") != NULL;
    CHECK(json.data && strstr(json.data, refresh) == NULL);
    tv_buf_free(&json);
    if (!empty) {
      struct timespec t = {0, 20 * 1000 * 1000};
      nanosleep(&t, NULL);
    }
  }
  CHECK(empty);
  CHECK(tvt_server_stat(&srv, "rfc7009_revocations") == 1);
  CHECK(tvt_server_stat(&srv, "families_revoked") == 1);
  size_t revoked = 99, pending = 99;
  CHECK_STATUS(tv_vault_send_revocations(v, &revoked, &pending), TV_OK);
  CHECK(revoked == 0 && pending == 0);
  CHECK_STATUS(tv_vault_send_revocations(v, NULL, NULL), TV_OK);
  free(access);
  free(refresh);
  tv_vault_free(v);
out:
  free(path);
  tvt_rmdir(dir);
  tvt_server_stop(&srv);
}

/* OpenID Connect: against oidc-provider (ES256, then RS256), a forced refresh through the
 * built-in transport validates the id_token and its standard claims appear in
 * tv_vault_session_info_json under "identity"; an id_token naming another subject is
 * TV_PROTOCOL and stores nothing. */
static void test_oidc_identity_claims(void) {
  const char *algs[] = {"ES256", "RS256"};
  for (size_t a = 0; a < 2; a++) {
    tvt_server op;
    if (tvt_oidc_start(&op, algs[a]) != 0) {
      CHECK(!"oidc-provider started");
      return;
    }
    char *dir = tvt_tempdir();
    char *path = db_path(dir);
    char *access = NULL, *refresh = NULL;
    CHECK(tvt_oidc_bootstrap(&op, "ada", &access, &refresh) == 0);
    tv_vault *v = NULL;
    CHECK_STATUS(tv_vault_open_with_key(path, KEY, sizeof KEY, &v), TV_OK);
    if (!v || !access || !refresh) goto out;
    char profile[512];
    snprintf(profile, sizeof profile,
             "{\"preset\":\"oauth2\",\"name\":\"game\",\"url\":\"%s/token\",\"client_id\":\"tokenvault-test\","
             "\"oidc\":{\"issuer\":\"%s\"}}",
             op.base_url, op.base_url);
    CHECK_STATUS(tv_vault_load_profile_json(v, profile), TV_OK);
    CHECK_STATUS(store(v, "ada", access, refresh, NULL), TV_OK);

    tv_buf json = {0};
    CHECK_STATUS(tv_vault_session_info_json(v, "ada", &json), TV_OK);
    CHECK(json.data && strstr(json.data, "\"identity\":null"));
    tv_buf_free(&json);

    tv_buf tok = {0};
    CHECK_STATUS(tv_vault_force_refresh(v, "ada", &tok, NULL), TV_OK);
    tv_buf_free(&tok);
    CHECK_STATUS(tv_vault_session_info_json(v, "ada", &json), TV_OK);
    const char *j = json.data;
    CHECK(j && strstr(j, "\"identity\":{"));
    CHECK(j && strstr(j, "\"sub\":\"ada\""));
    CHECK(j && strstr(j, "\"email\":\"ada@example.test\""));
    CHECK(j && strstr(j, "\"email_verified\":true"));
    CHECK(j && strstr(j, "\"name\":\"Player ada\""));
    CHECK(j && strstr(j, "\"picture\":\"https://example.test/avatars/ada.png\""));
    CHECK(j && strstr(j, "\"locale\":\"en-GB\""));
    CHECK(j && !strstr(j, "id_token"));
    tv_session_info before;
    memset(&before, 0, sizeof before);
    before.struct_size = sizeof before;
    CHECK_STATUS(tv_vault_session_info(v, "ada", &before), TV_OK);

    /* Another subject: refused, nothing stored, the claims unchanged. */
    CHECK(tvt_oidc_post(&op, "/test/next-sub?sub=mallory") == 204);
    CHECK_STATUS(tv_vault_force_refresh(v, "ada", &tok, NULL), TV_PROTOCOL);
    tv_buf_free(&tok);
    CHECK(strstr(tvt_last_error(), "(sub)") != NULL && strstr(tvt_last_error(), "mallory") == NULL);
    tv_session_info after;
    memset(&after, 0, sizeof after);
    after.struct_size = sizeof after;
    CHECK_STATUS(tv_vault_session_info(v, "ada", &after), TV_OK);
    CHECK(after.generation == before.generation);
    tv_buf again = {0};
    CHECK_STATUS(tv_vault_session_info_json(v, "ada", &again), TV_OK);
    CHECK(again.data && strstr(again.data, "\"email\":\"ada@example.test\"") && !strstr(again.data, "mallory"));
    tv_buf_free(&again);
    tv_buf_free(&json);
  out:
    tv_vault_free(v);
    free(access);
    free(refresh);
    free(path);
    tvt_rmdir(dir);
    tvt_server_stop(&op);
  }
}

int main(void) {
  test_static_functions_and_null_checks();
  test_full_cycle();
  test_concurrent_reads();
  test_anchor_and_move_session();
  test_options_metrics_and_logs();
  test_store_response_and_epoch_expires_in();
  test_remove_and_revoke();
  test_oidc_identity_claims();
  printf("test_c_api: %d checks, %d failures\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
