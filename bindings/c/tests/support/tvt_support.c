/* See tvt_support.h. POSIX only (Linux, macOS). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include "tvt_support.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- small growable buffer ----------------------------------------------------------- */

typedef struct buf {
  char *p;
  size_t len, cap;
} buf;

static int buf_add(buf *b, const void *data, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (b->len + n + 1 > cap) cap *= 2;
    char *p = (char *)realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = 0;
  return 0;
}

static int buf_str(buf *b, const char *s) { return buf_add(b, s, strlen(s)); }

static void buf_wipe_free(buf *b) {
  if (b->p) {
    memset(b->p, 0, b->cap); /* requests carry credentials */
    free(b->p);
  }
  b->p = NULL;
  b->len = b->cap = 0;
}

static char *dup_range(const char *p, size_t n) {
  char *s = (char *)malloc(n + 1);
  if (!s) return NULL;
  memcpy(s, p, n);
  s[n] = 0;
  return s;
}

/* ---- HTTP client --------------------------------------------------------------------- */

/* http://host:port/path only (the reference server); host must be an IPv4 literal. */
static int parse_url(const char *url, char *host, size_t host_len, int *port, const char **path) {
  if (strncmp(url, "http://", 7) != 0) return -1;
  const char *h = url + 7;
  const char *slash = strchr(h, '/');
  const char *end = slash ? slash : h + strlen(h);
  const char *colon = memchr(h, ':', (size_t)(end - h));
  size_t hl = (size_t)((colon ? colon : end) - h);
  if (hl == 0 || hl >= host_len) return -1;
  memcpy(host, h, hl);
  host[hl] = 0;
  *port = colon ? atoi(colon + 1) : 80;
  *path = slash ? slash : "/";
  return 0;
}

static int errno_to_result(int e) {
  return (e == EAGAIN || e == EWOULDBLOCK || e == ETIMEDOUT) ? TV_TRANSPORT_TIMEOUT : TV_TRANSPORT_IO;
}

int tvt_http(const char *method, const char *url, const tvt_header *headers, size_t header_count,
             const uint8_t *body, size_t body_len, uint64_t timeout_ms, tvt_response *out) {
  char host[64];
  int port;
  const char *path;
  memset(out, 0, sizeof *out);
  if (parse_url(url, host, sizeof host, &port, &path) != 0) return TV_TRANSPORT_OTHER;

  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) return TV_TRANSPORT_CONNECT;

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return TV_TRANSPORT_OTHER;
  struct timeval tv;
  tv.tv_sec = (time_t)(timeout_ms / 1000);
  tv.tv_usec = (suseconds_t)((timeout_ms % 1000) * 1000);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    close(fd);
    return TV_TRANSPORT_CONNECT;
  }

  buf req = {0};
  char line[256];
  snprintf(line, sizeof line, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\nContent-Length: %zu\r\n",
           method, path, host, port, body_len);
  int bad = buf_str(&req, line);
  for (size_t i = 0; i < header_count && !bad; i++) {
    bad |= buf_str(&req, headers[i].name);
    bad |= buf_str(&req, ": ");
    bad |= buf_str(&req, headers[i].value);
    bad |= buf_str(&req, "\r\n");
  }
  bad |= buf_str(&req, "\r\n");
  bad |= buf_add(&req, body, body_len);
  if (bad) {
    buf_wipe_free(&req);
    close(fd);
    return TV_TRANSPORT_OTHER;
  }
  size_t sent = 0;
  while (sent < req.len) {
    ssize_t n = send(fd, req.p + sent, req.len - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int r = errno_to_result(errno);
      buf_wipe_free(&req);
      close(fd);
      return r;
    }
    sent += (size_t)n;
  }
  buf_wipe_free(&req);

  buf resp = {0};
  char chunk[8192];
  for (;;) {
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int r = errno_to_result(errno);
      buf_wipe_free(&resp);
      close(fd);
      return r;
    }
    if (n == 0) break;
    if (buf_add(&resp, chunk, (size_t)n) != 0) {
      buf_wipe_free(&resp);
      close(fd);
      return TV_TRANSPORT_OTHER;
    }
  }
  close(fd);

  /* Status line, headers, body. */
  char *head_end = resp.p ? strstr(resp.p, "\r\n\r\n") : NULL;
  if (!head_end || strncmp(resp.p, "HTTP/1.", 7) != 0) {
    buf_wipe_free(&resp);
    return TV_TRANSPORT_IO; /* a dropped connection or garbage */
  }
  out->status = atoi(resp.p + 9);
  char *p = strstr(resp.p, "\r\n") + 2;
  size_t cap = 0;
  while (p < head_end) {
    char *eol = strstr(p, "\r\n");
    char *colon = memchr(p, ':', (size_t)(eol - p));
    if (colon) {
      if (out->header_count == cap) {
        cap = cap ? cap * 2 : 16;
        tvt_header *h = (tvt_header *)realloc(out->headers, cap * sizeof *h);
        if (!h) break;
        out->headers = h;
      }
      char *v = colon + 1;
      while (v < eol && *v == ' ') v++;
      out->headers[out->header_count].name = dup_range(p, (size_t)(colon - p));
      out->headers[out->header_count].value = dup_range(v, (size_t)(eol - v));
      out->header_count++;
    }
    p = eol + 2;
  }
  const char *body_start = head_end + 4;
  size_t avail = resp.len - (size_t)(body_start - resp.p);
  const char *cl = tvt_response_header(out, "Content-Length");
  size_t want = cl ? (size_t)strtoull(cl, NULL, 10) : avail;
  if (want > avail) {
    buf_wipe_free(&resp);
    tvt_response_free(out);
    return TV_TRANSPORT_IO; /* truncated */
  }
  out->body = (uint8_t *)dup_range(body_start, want);
  out->body_len = want;
  buf_wipe_free(&resp);
  return 0;
}

void tvt_response_free(tvt_response *r) {
  for (size_t i = 0; i < r->header_count; i++) {
    free(r->headers[i].name);
    free(r->headers[i].value);
  }
  free(r->headers);
  if (r->body) {
    memset(r->body, 0, r->body_len);
    free(r->body);
  }
  memset(r, 0, sizeof *r);
}

const char *tvt_response_header(const tvt_response *r, const char *name) {
  for (size_t i = 0; i < r->header_count; i++)
    if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
  return NULL;
}

/* ---- reference server ---------------------------------------------------------------- */

const char *tvt_server_binary(void) {
  const char *b = getenv("TV_REFERENCE_SERVER");
  return (b && *b) ? b : NULL;
}

/* Run argv[0] (execvp, in `cwd` if not NULL) with pipes on stdin and stdout, and wait for its
 * `LISTENING <port>` line. */
static int spawn_listening(tvt_server *s, const char *cwd, const char *const *argv) {
  int in[2], out[2];
  if (pipe(in) != 0) return -1;
  if (pipe(out) != 0) {
    close(in[0]);
    close(in[1]);
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    if (cwd && chdir(cwd) != 0) _exit(126);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  s->pid = pid;
  s->stdin_fd = in[1];
  char line[128];
  size_t n = 0;
  while (n + 1 < sizeof line) {
    ssize_t r = read(out[0], line + n, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || line[n] == '\n') break;
    n++;
  }
  line[n] = 0;
  close(out[0]);
  if (sscanf(line, "LISTENING %d", &s->port) != 1) {
    fprintf(stderr, "%s did not start: '%s'\n", argv[0], line);
    tvt_server_stop(s);
    return -1;
  }
  snprintf(s->base_url, sizeof s->base_url, "http://127.0.0.1:%d", s->port);
  return 0;
}

int tvt_server_start(tvt_server *s, const char *dialect, const char *const *extra_args) {
  memset(s, 0, sizeof *s);
  const char *bin = tvt_server_binary();
  if (!bin) {
    fprintf(stderr, "TV_REFERENCE_SERVER is not set\n");
    return -1;
  }
  const char *argv[32];
  size_t argc = 0;
  argv[argc++] = bin;
  argv[argc++] = "--dialect";
  argv[argc++] = dialect;
  for (size_t i = 0; extra_args && extra_args[i] && argc < 30; i++) argv[argc++] = extra_args[i];
  argv[argc] = NULL;
  return spawn_listening(s, NULL, argv);
}

int tvt_oidc_start(tvt_server *s, const char *alg) {
  memset(s, 0, sizeof *s);
  const char *dir = getenv("TV_OIDC_DIR");
  if (!dir || !*dir) {
    fprintf(stderr, "TV_OIDC_DIR is not set (tests/oidc, after npm ci --prefix tests/oidc)\n");
    return -1;
  }
  const char *node = getenv("TOKENVAULT_NODE");
  const char *argv[] = {node && *node ? node : "node", "server.mjs", "--alg", alg, NULL};
  return spawn_listening(s, dir, argv);
}

int tvt_oidc_bootstrap(const tvt_server *s, const char *account, char **out_access, char **out_refresh) {
  char url[128], form[256];
  snprintf(url, sizeof url, "%s/token", s->base_url);
  snprintf(form, sizeof form, "grant_type=urn%%3Atokenvault%%3Atest%%3Abootstrap&client_id=tokenvault-test&account=%s",
           account);
  tvt_header h = {(char *)"Content-Type", (char *)"application/x-www-form-urlencoded"};
  tvt_response r;
  if (tvt_http("POST", url, &h, 1, (const uint8_t *)form, strlen(form), 10000, &r) != 0) return -1;
  int ok = r.status == 200;
  char *a = ok ? tvt_json_string((const char *)r.body, "access_token") : NULL;
  char *c = ok ? tvt_json_string((const char *)r.body, "refresh_token") : NULL;
  tvt_response_free(&r);
  if (!a || !c) {
    free(a);
    free(c);
    return -1;
  }
  *out_access = a;
  *out_refresh = c;
  return 0;
}

int tvt_oidc_post(const tvt_server *s, const char *path_and_query) {
  char url[256];
  snprintf(url, sizeof url, "%s%s", s->base_url, path_and_query);
  tvt_response r;
  if (tvt_http("POST", url, NULL, 0, NULL, 0, 10000, &r) != 0) return -1;
  int status = r.status;
  tvt_response_free(&r);
  return status;
}

void tvt_server_stop(tvt_server *s) {
  if (s->stdin_fd > 0) close(s->stdin_fd); /* EOF on stdin stops the server */
  s->stdin_fd = -1;
  if (s->pid > 0) {
    int status;
    while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  s->pid = 0;
}

static int request_json(const tvt_server *s, const char *method, const char *path, const char *json,
                        const char *bearer, tvt_response *out) {
  char url[256];
  snprintf(url, sizeof url, "%s%s", s->base_url, path);
  tvt_header h[2];
  size_t n = 0;
  char auth[8192];
  if (json) {
    h[n].name = (char *)"Content-Type";
    h[n].value = (char *)"application/json";
    n++;
  }
  if (bearer) {
    snprintf(auth, sizeof auth, "Bearer %s", bearer);
    h[n].name = (char *)"Authorization";
    h[n].value = auth;
    n++;
  }
  return tvt_http(method, url, h, n, (const uint8_t *)json, json ? strlen(json) : 0, 10000, out);
}

int tvt_server_login(const tvt_server *s, const char *user, char **out_access, char **out_refresh) {
  char json[256];
  snprintf(json, sizeof json, "{\"user\":\"%s\"}", user);
  tvt_response r;
  if (request_json(s, "POST", "/test/login", json, NULL, &r) != 0) return -1;
  int ok = r.status == 200;
  char *a = ok ? tvt_json_string((const char *)r.body, "accessToken") : NULL;
  char *c = ok ? tvt_json_string((const char *)r.body, "refreshCredential") : NULL;
  tvt_response_free(&r);
  if (!a || !c) {
    free(a);
    free(c);
    return -1;
  }
  *out_access = a;
  *out_refresh = c;
  return 0;
}

int tvt_server_post(const tvt_server *s, const char *path, const char *json) {
  tvt_response r;
  if (request_json(s, "POST", path, json, NULL, &r) != 0) return -1;
  int status = r.status;
  tvt_response_free(&r);
  return status;
}

long tvt_server_stat(const tvt_server *s, const char *counter) {
  tvt_response r;
  if (request_json(s, "GET", "/test/stats", NULL, NULL, &r) != 0) return -1;
  long v = -1;
  char key[128];
  snprintf(key, sizeof key, "\"%s\":", counter);
  const char *p = r.body ? strstr((const char *)r.body, key) : NULL;
  if (p) v = strtol(p + strlen(key), NULL, 10);
  tvt_response_free(&r);
  return v;
}

int tvt_server_protected(const tvt_server *s, const char *access_token) {
  tvt_response r;
  if (request_json(s, "GET", "/protected", NULL, access_token, &r) != 0) return -1;
  int status = r.status;
  tvt_response_free(&r);
  return status;
}

char *tvt_json_string(const char *json, const char *key) {
  char pat[128];
  snprintf(pat, sizeof pat, "\"%s\":\"", key);
  const char *p = json ? strstr(json, pat) : NULL;
  if (!p) return NULL;
  p += strlen(pat);
  const char *e = strchr(p, '"');
  return e ? dup_range(p, (size_t)(e - p)) : NULL;
}

/* ---- the transport callback ---------------------------------------------------------- */

int tvt_perform(const tv_http_request *request, tvt_response *out) {
  const char *method, *url;
  size_t count = 0, body_len = 0;
  const uint8_t *body;
  uint64_t timeout_ms = 0;
  if (tv_http_request_method(request, &method) != TV_OK || tv_http_request_url(request, &url) != TV_OK ||
      tv_http_request_header_count(request, &count) != TV_OK ||
      tv_http_request_body(request, &body, &body_len) != TV_OK ||
      tv_http_request_timeout_ms(request, &timeout_ms) != TV_OK)
    return TV_TRANSPORT_OTHER;
  tvt_header *h = (tvt_header *)calloc(count ? count : 1, sizeof *h);
  if (!h) return TV_TRANSPORT_OTHER;
  for (size_t i = 0; i < count; i++) {
    const char *name, *value;
    if (tv_http_request_header(request, i, &name, &value) != TV_OK) {
      free(h);
      return TV_TRANSPORT_OTHER;
    }
    h[i].name = (char *)name;
    h[i].value = (char *)value;
  }
  int r = tvt_http(method, url, h, count, body, body_len, timeout_ms, out);
  free(h);
  return r;
}

int32_t tvt_transport(void *user_data, const tv_http_request *request, tv_http_response *response) {
  tvt_transport_stats *stats = (tvt_transport_stats *)user_data;
  if (stats) {
    __atomic_add_fetch(&stats->calls, 1, __ATOMIC_SEQ_CST);
    if (stats->on_call) stats->on_call(stats->on_call_ctx, request);
  }
  tvt_response r;
  int rc = tvt_perform(request, &r);
  if (rc != 0) {
    if (stats) __atomic_add_fetch(&stats->failures, 1, __ATOMIC_SEQ_CST);
    return rc;
  }
  int32_t result = TV_TRANSPORT_OK;
  if (tv_http_response_set_status(response, (uint16_t)r.status) != TV_OK) result = TV_TRANSPORT_OTHER;
  for (size_t i = 0; i < r.header_count && result == TV_TRANSPORT_OK; i++)
    if (tv_http_response_add_header(response, r.headers[i].name, r.headers[i].value) != TV_OK)
      result = TV_TRANSPORT_OTHER;
  /* Hand the body over in pieces, as a streaming client would. */
  for (size_t off = 0; off < r.body_len && result == TV_TRANSPORT_OK; off += 4096) {
    size_t n = r.body_len - off < 4096 ? r.body_len - off : 4096;
    if (tv_http_response_append_body(response, r.body + off, n) != TV_OK) result = TV_TRANSPORT_TOO_LARGE;
  }
  tvt_response_free(&r);
  return result;
}

/* ---- misc ---------------------------------------------------------------------------- */

char *tvt_tempdir(void) {
  const char *base = getenv("TMPDIR");
  char tmpl[512];
  snprintf(tmpl, sizeof tmpl, "%s/tokenvault-test-XXXXXX", (base && *base) ? base : "/tmp");
  char *d = mkdtemp(tmpl);
  return d ? strdup(d) : NULL;
}

void tvt_rmdir(char *dir) {
  if (!dir) return;
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      unlink(path);
    }
    closedir(d);
  }
  rmdir(dir);
  free(dir);
}

const char *tvt_last_error(void) {
  static __thread char msg[1024];
  size_t len = 0;
  if (tv_last_error_message(msg, sizeof msg, &len) != TV_OK) {
    /* Too long: show the start. */
    snprintf(msg, sizeof msg, "(message of %zu bytes)", len);
  }
  return msg;
}
