/* The Lua half of tghost (the lua directory), compiled into the binary. */
#ifndef TGHOST_EMBEDDED_H
#define TGHOST_EMBEDDED_H

#include <stddef.h>

struct embedded_module {
  const char *name;     /* module name for require(): "tghost.composer" */
  const char *path;     /* source path, for error messages: "lua/composer.lua" */
  const char *code;
  size_t len;
};

/* Terminated by an entry whose name is NULL. */
extern const struct embedded_module embedded_modules[];

#endif
