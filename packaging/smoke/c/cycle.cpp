// The store/read cycle through the C++17 wrapper, built with -fno-exceptions: open a vault in the
// folder given as argv[1] with a 32-byte raw key, register a profile, store a session, read its
// access token, close; open again and read it again. Prints "cycle ok" and exits 0, or names the
// failing step.
#include <cstdint>
#include <cstdio>
#include <string>

#include "tokenvault.hpp"

namespace {

const char *const kProfile =
    "{\"preset\":\"oauth2\",\"name\":\"backend\","
    "\"url\":\"https://auth.example.com/oauth/token\",\"client_id\":\"game\"}";
const std::string kToken = "smoke-access-token-cpp";

int fail(const char *what, const tv::Error &e) {
  std::fprintf(stderr, "%s: %s\n", what, e.message().c_str());
  return 1;
}

int open_and_read(const std::string &path, const uint8_t *key, bool store) {
  auto vault = tv::Vault::open_with_key(path, key, 32);
  if (!vault) return fail("open", vault.error());
  if (auto r = vault->load_profile_json(kProfile); !r) return fail("load_profile_json", r.error());
  if (store) {
    tv::Session s;
    s.account = "player-1";
    s.profile = "backend";
    s.access_token = kToken;
    s.refresh_credential = "smoke-refresh-token";
    s.expires_in = std::chrono::seconds(3600);
    if (auto r = vault->store(s); !r) return fail("store", r.error());
  }
  auto token = vault->access_token("player-1");
  if (!token) return fail("access_token", token.error());
  if (token->view() != kToken) {
    std::fprintf(stderr, "access token: got another token back\n");
    return 1;
  }
  if (auto r = vault->close(); !r) return fail("close", r.error());
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <folder>\n", argv[0]);
    return 2;
  }
  const std::string path = std::string(argv[1]) + "/tokens.db";
  uint8_t key[32];
  for (int i = 0; i < 32; i++) key[i] = static_cast<uint8_t>(i * 7 + 1);
  if (open_and_read(path, key, true) != 0) return 1;
  if (open_and_read(path, key, false) != 0) return 1;
  std::printf("cycle ok (tokenvault %s)\n", tv_version());
  return 0;
}
