// The wrapper compiles and works with -fno-exceptions -fno-rtti (as Unreal builds): open,
// profile, store, read into a buffer and as a Token, a transport lambda, errors as values.
// No GoogleTest here (it is built with exceptions); exits non-zero on the first failure.
#include <cstdio>
#include <cstring>
#include <string>

#include "support/tvt_support.h"
#include "tokenvault.hpp"

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#error "build this file with -fno-exceptions"
#endif

#define REQUIRE(cond)                                                  \
  do {                                                                 \
    if (!(cond)) {                                                     \
      std::fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
      return 1;                                                        \
    }                                                                  \
  } while (0)

int main() {
  char *dir = tvt_tempdir();
  REQUIRE(dir != nullptr);
  std::string path = std::string(dir) + "/vault.db";
  int rc = 0;
  {
    const uint8_t key[32] = {42};
    auto opened = tv::Vault::open_with_key(path, key, sizeof key);
    REQUIRE(opened.ok());
    tv::Vault v = std::move(opened).value();
    REQUIRE(v.load_profile_json(
        R"({"preset":"oauth2","name":"idp","url":"https://auth.example.invalid/token","client_id":"game"})"));
    int calls = 0;
    REQUIRE(v.set_transport([&calls](const tv::HttpRequest &, tv::HttpResponseWriter &) {
      ++calls;
      return tv::TransportResult::Connect;
    }));
    tv::Session s;
    s.account = "ada";
    s.profile = "idp";
    s.access_token = "opaque-access-token";
    s.refresh_credential = "opaque-refresh-token";
    s.expires_in = std::chrono::seconds(3600);
    REQUIRE(v.store(s));
    char buf[64];
    auto n = v.access_token_into("ada", buf, sizeof buf);
    REQUIRE(n && std::string(buf, *n) == "opaque-access-token");
    auto t = v.access_token("ada");
    REQUIRE(t && t->view() == "opaque-access-token");
    // The transport fails: the error comes back as a value, the session stays.
    auto f = v.force_refresh("ada");
    REQUIRE(!f && f.status() == tv::Status::Transient && calls == 1);
    REQUIRE(!f.error().message().empty());
    REQUIRE(v.access_token("ada"));
    REQUIRE(v.access_token("nobody").status() == tv::Status::NotFound);
    REQUIRE(v.close());
    REQUIRE(v.access_token("ada").status() == tv::Status::Closed);
  }
  tvt_rmdir(dir);
  std::printf("no_exceptions: ok\n");
  return rc;
}
