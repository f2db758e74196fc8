/* The tghost.execcore module under tghost.exec (lua/exec.lua): child
 * processes from Lua, on the host's loop (net/child.h).
 *
 * spawn{ "program", "arg", ..., env = {NAME = "value" | false}, cwd =,
 * timeout = seconds } starts the program (no shell; PATH is searched) and
 * returns a process handle, or nil, message when it cannot be started.
 * The handle's await(what [, want_stdin]) returns at once when it can,
 * and otherwise suspends the calling task until something changes and
 * returns "again" (the Lua side loops):
 *   await("output") -> "stdout", chunk | "stderr", chunk |
 *                      "exit", code|nil, signal name|nil, timed_out |
 *                      "stdin" (with want_stdin: stdin has taken all)
 *   await("stdin")  -> "stdin" (64 KiB or less queued) | "exit"
 * write(data) queues stdin (false once stdin is closed), close_stdin(),
 * kill(signal), pid(), close() (kill and forget).
 *
 * A process belongs to the job that started it: when the job ends
 * (returned, failed, cancelled) a process still running is killed, its
 * whole process group (SIGTERM, SIGKILL a second later), and reaped. */
#ifndef TGHOST_LUAEXEC_H
#define TGHOST_LUAEXEC_H

#include <lua.h>

int luaopen_tghost_execcore(lua_State *L);

#endif
