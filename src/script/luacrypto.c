#include "script/luacrypto.h"

#include <lauxlib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

static int l_hmac_sha256(lua_State *L) {
  size_t klen, mlen;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *msg = luaL_checklstring(L, 2, &mlen);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, out,
            &n))
    return luaL_error(L, "tghost.crypto: HMAC-SHA256 failed");
  lua_pushlstring(L, (const char *)out, n);
  return 1;
}

static int l_sha256(lua_State *L) {
  size_t mlen;
  const char *msg = luaL_checklstring(L, 1, &mlen);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!EVP_Digest(msg, mlen, out, &n, EVP_sha256(), NULL))
    return luaL_error(L, "tghost.crypto: SHA-256 failed");
  lua_pushlstring(L, (const char *)out, n);
  return 1;
}

/* equal(a, b): strings of different lengths differ at once (a length is
 * no secret here: every signature is 64 hex digits). */
static int l_equal(lua_State *L) {
  size_t alen, blen;
  const char *a = luaL_checklstring(L, 1, &alen);
  const char *b = luaL_checklstring(L, 2, &blen);
  lua_pushboolean(L, alen == blen && CRYPTO_memcmp(a, b, alen) == 0);
  return 1;
}

int luaopen_tghost_crypto(lua_State *L) {
  static const luaL_Reg fns[] = {{"hmac_sha256", l_hmac_sha256},
                                 {"sha256", l_sha256},
                                 {"equal", l_equal},
                                 {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
