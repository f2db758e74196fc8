/* The tghost.crypto module under tghost.webapp and tghost.login
 * (lua/webapp.lua): the primitives Telegram's signatures need, from
 * OpenSSL's libcrypto (which libcurl already links).
 *
 * hmac_sha256(key, message) and sha256(message) return raw 32-byte
 * digests; equal(a, b) compares two strings in time that depends on their
 * length only (CRYPTO_memcmp), for comparing a signature with the one
 * computed. Misuse (a non-string argument) raises. */
#ifndef TGHOST_LUACRYPTO_H
#define TGHOST_LUACRYPTO_H

#include <lua.h>

int luaopen_tghost_crypto(lua_State *L);

#endif
