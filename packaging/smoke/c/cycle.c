/* The store/read cycle through the C API, as a user's program: open a vault in the folder given
 * as argv[1] with a 32-byte raw key, register a profile, store a session, read its access token,
 * close; open again and read it again. Prints "cycle ok" and exits 0, or names the failing step. */
#include <stdio.h>
#include <string.h>

#include "tokenvault.h"

static const char *PROFILE =
    "{\"preset\":\"oauth2\",\"name\":\"backend\","
    "\"url\":\"https://auth.example.com/oauth/token\",\"client_id\":\"game\"}";
static const char *TOKEN = "smoke-access-token-c";

static int fail(const char *what, tv_status st) {
  char msg[512] = {0};
  size_t len = 0;
  tv_last_error_message(msg, sizeof msg, &len);
  fprintf(stderr, "%s: %s (%s)\n", what, tv_status_name(st), msg);
  return 1;
}

/* Opens the vault, registers the profile, and checks the stored token reads back. */
static int open_and_read(const char *path, const uint8_t *key, int store) {
  tv_vault *vault = NULL;
  tv_status st = tv_vault_open_with_key(path, key, 32, &vault);
  if (st != TV_OK) return fail("open", st);
  st = tv_vault_load_profile_json(vault, PROFILE);
  if (st != TV_OK) return fail("load_profile_json", st);
  if (store) {
    tv_session_params p;
    memset(&p, 0, sizeof p);
    p.struct_size = sizeof p;
    p.account = "player-1";
    p.profile = "backend";
    p.access_token = TOKEN;
    p.refresh_credential = "smoke-refresh-token";
    p.expires_in_secs = 3600;
    st = tv_vault_store(vault, &p, NULL);
    if (st != TV_OK) return fail("store", st);
  }
  char token[256];
  size_t len = 0;
  st = tv_vault_access_token_copy(vault, "player-1", 0, token, sizeof token, &len, NULL);
  if (st != TV_OK) return fail("access_token_copy", st);
  if (len != strlen(TOKEN) || memcmp(token, TOKEN, len) != 0) {
    fprintf(stderr, "access token: got another token back\n");
    return 1;
  }
  st = tv_vault_close(vault);
  if (st != TV_OK) return fail("close", st);
  tv_vault_free(vault);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s <folder>\n", argv[0]);
    return 2;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/tokens.db", argv[1]);
  uint8_t key[32];
  for (int i = 0; i < 32; i++) key[i] = (uint8_t)(i * 7 + 1);
  if (open_and_read(path, key, 1) != 0) return 1;
  if (open_and_read(path, key, 0) != 0) return 1;
  printf("cycle ok (tokenvault %s)\n", tv_version());
  return 0;
}
