/* Hot reload: new handlers go live without losing, duplicating or
 * reordering an update.
 *
 * What triggers a reload: a change to the script or to a Lua module it
 * required from the script's folder (see deps.h), seen through inotify on
 * the folders that hold them (unless --no-watch), and SIGHUP (always).
 * Folders are watched rather than files because editors save by writing a
 * new file and renaming it over the old one: a watch on the old file would
 * go with it, while the folder's watch sees the new file arrive under the
 * same name. Bursts of events (truncate, writes, close, rename) are
 * debounced: the reload starts once the files have been quiet for 100 ms,
 * or 1 s after the first event at the latest.
 *
 * A reload loads the script into a new generation (its own Lua state) and
 * runs its top level while the current generation goes on serving. If the
 * top level fails (syntax error, runtime error, an invalid filter query,
 * the CPU guard, no run() call, or not finishing within the load timeout)
 * the failure is logged with its file:line and the current generation stays.
 * Otherwise the new generation becomes host->current at once: updates not
 * yet started run on it, updates in flight finish on the generation they
 * started in, which is closed when its last job ends. The runner, the
 * offset, the connections and everything else in C are untouched; run()'s
 * options are reapplied through runner_reconfigure().
 *
 * Changes seen while a reload runs start another one when it ends, so
 * generations go live in the order the files were written. */
#ifndef TGHOST_RELOAD_H
#define TGHOST_RELOAD_H

struct host;
struct reloader;
struct script_env;

/* Installs the SIGHUP handler and, with cfg->watch, an inotify instance;
 * new generations' bindings see env. Nothing is reloaded before
 * reload_start(); a request made earlier is remembered. Never fails:
 * without inotify it logs why and keeps SIGHUP. */
struct reloader *reload_new(struct host *h, struct script_env *env);
/* The first generation is current and the runner runs: watch its files and
 * serve reload requests from now on. */
void reload_start(struct reloader *r);
/* Call after the scheduler has cancelled every job (teardown). */
void reload_free(struct reloader *r);

#endif
