/*
 * The cached-token read through the C ABI, timed with clock_gettime(CLOCK_MONOTONIC): a
 * ~900-byte token (as in core/benches/vault.rs `cached_read`) read many times per run, several
 * runs, median ns/call printed. Compare with the Rust criterion figure of the same run
 * (`cargo bench -p tokenvault --bench vault -- cached_read`).
 *
 *   bindings/c/bench/run-bench.sh [iterations] [runs]
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tokenvault.h"

#define TOKEN_LEN 900

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Keeps the compiler from dropping the copy. */
static volatile unsigned char sink;

typedef int (*op_fn)(void *ctx);

typedef struct ctx {
  tv_vault *vault;
  char buf[4096];
  const char *token;
  uint64_t generation;
} ctx;

static int op_copy(void *p) {
  ctx *c = (ctx *)p;
  size_t len;
  int st = tv_vault_access_token_copy(c->vault, "player-1", 0, c->buf, sizeof c->buf, &len, NULL);
  sink = (unsigned char)c->buf[len - 1];
  return st;
}

static int op_buf(void *p) {
  ctx *c = (ctx *)p;
  tv_buf b;
  int st = tv_vault_access_token(c->vault, "player-1", 0, &b, NULL);
  sink = (unsigned char)b.data[b.len - 1];
  tv_buf_free(&b);
  return st;
}

/* The generation check of a caller that keeps its copy: nothing crosses while unchanged. */
static int op_if_changed(void *p) {
  ctx *c = (ctx *)p;
  tv_buf b;
  uint64_t gen;
  uint8_t changed;
  int st = tv_vault_token_if_changed(c->vault, "player-1", 0, c->generation, &b, &gen, &changed);
  if (changed) tv_buf_free(&b);
  sink = changed;
  return st;
}

static int op_memcpy(void *p) {
  ctx *c = (ctx *)p;
  memcpy(c->buf, c->token, TOKEN_LEN + 1);
  sink = (unsigned char)c->buf[TOKEN_LEN - 1];
  return 0;
}

static void run(const char *label, op_fn op, ctx *c, long iters, int runs) {
  double *per_call = (double *)calloc((size_t)runs, sizeof *per_call);
  for (long i = 0; i < iters / 10; i++) op(c); /* warm-up */
  for (int r = 0; r < runs; r++) {
    double t0 = now_ns();
    for (long i = 0; i < iters; i++) {
      if (op(c) != 0) {
        fprintf(stderr, "%s failed\n", label);
        exit(1);
      }
    }
    per_call[r] = (now_ns() - t0) / (double)iters;
  }
  qsort(per_call, (size_t)runs, sizeof *per_call, cmp_double);
  printf("%-48s median %7.1f ns/call  (%d runs x %ld; min %.1f, max %.1f)\n", label, per_call[runs / 2], runs, iters,
         per_call[0], per_call[runs - 1]);
  free(per_call);
}

int main(int argc, char **argv) {
  long iters = argc > 1 ? atol(argv[1]) : 1000000;
  int runs = argc > 2 ? atoi(argv[2]) : 9;
  char dir[] = "/tmp/tokenvault-bench-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char path[256];
  snprintf(path, sizeof path, "%s/bench.db", dir);

  static const unsigned char key[32] = {7};
  ctx c;
  memset(&c, 0, sizeof c);
  if (tv_vault_open_with_key(path, key, sizeof key, &c.vault) != TV_OK) return 1;
  if (tv_vault_load_profile_json(c.vault, "{\"preset\":\"oauth2\",\"name\":\"bench\","
                                          "\"url\":\"https://auth.example.com/oauth/token\",\"client_id\":\"bench\"}") != TV_OK)
    return 1;
  static char token[TOKEN_LEN + 1];
  for (int i = 0; i < TOKEN_LEN; i++) token[i] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"[i % 64];
  token[TOKEN_LEN] = 0;
  c.token = token;
  tv_session_params p;
  memset(&p, 0, sizeof p);
  p.struct_size = sizeof p;
  p.account = "player-1";
  p.profile = "bench";
  p.access_token = token;
  p.refresh_credential = "refresh-credential-of-player-1";
  p.expires_in_secs = 3600;
  p.refresh_expires_in_secs = -1;
  tv_session_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  if (tv_vault_store(c.vault, &p, &info) != TV_OK) return 1;
  c.generation = info.generation;

  printf("tokenvault %s, %d-byte token\n", tv_version(), TOKEN_LEN);
  run("c_abi_cached_read/copy_into_caller_buffer", op_copy, &c, iters, runs);
  run("c_abi_cached_read/rust_owned_buf_then_free", op_buf, &c, iters, runs);
  run("c_abi_cached_read/token_if_changed_unchanged", op_if_changed, &c, iters, runs);
  run("control/memcpy_900_bytes", op_memcpy, &c, iters, runs);

  tv_vault_free(c.vault);
  unlink(path);
  char wal[300];
  snprintf(wal, sizeof wal, "%s-wal", path);
  unlink(wal);
  snprintf(wal, sizeof wal, "%s-shm", path);
  unlink(wal);
  rmdir(dir);
  return 0;
}
