/* A disk that fails on demand, for tests of code that must survive it (the
 * failure queue's commit errors). Loaded with LD_PRELOAD; it wraps the libc
 * calls SQLite's unix VFS makes and resolves the real ones with
 * dlsym(RTLD_NEXT).
 *
 * Environment (read at every call, so a running test switches faults by
 * creating and removing files, never by changing its environment):
 *   QFP_FAULT_FILE        while this file exists, fsync() and fdatasync()
 *                         fail with EIO (without syncing).
 *   QFP_FAULT_WRITE_FILE  while this file exists, write(), pwrite() and
 *                         pwrite64() on a file whose path ends in ".db",
 *                         "-wal" or "-journal" fail with EIO (without
 *                         writing).
 *   QFP_FSYNC_DELAY_MS    every fsync()/fdatasync() sleeps this many
 *                         milliseconds first (a slow disk for benchmarks).
 *
 * Counters, so that a test can prove the code under test went through the
 * shim (and cannot pass because nothing failed): look them up with
 * dlsym(RTLD_DEFAULT, name); they are absent when the shim is not loaded.
 *   qfp_fault_shim_syncs()     fsync/fdatasync calls seen
 *   qfp_fault_shim_injected()  calls made to fail
 *
 * Built without sanitizers: it runs before (and around) their runtimes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define QFP_EXPORT __attribute__((visibility("default")))

static atomic_ulong g_syncs;
static atomic_ulong g_injected;

QFP_EXPORT unsigned long qfp_fault_shim_syncs(void) {
  return atomic_load(&g_syncs);
}

QFP_EXPORT unsigned long qfp_fault_shim_injected(void) {
  return atomic_load(&g_injected);
}

/* The next definition of `name` after this library; aborts if there is
 * none, since every caller would otherwise fail silently. */
static void* next_symbol(const char* name) {
  void* sym = dlsym(RTLD_NEXT, name);
  if (sym == NULL) {
    fprintf(stderr, "qfp_fault_shim: no next definition of %s\n", name);
    abort();
  }
  return sym;
}

/* Resolves once per function; a race only resolves twice, to the same. */
#define REAL(type, name)                      \
  static _Atomic(type) real_##name;           \
  type fn_##name = atomic_load(&real_##name); \
  if (fn_##name == NULL) {                    \
    fn_##name = (type)next_symbol(#name);     \
    atomic_store(&real_##name, fn_##name);    \
  }

/* True while the file named by environment variable `var` exists. */
static int switched_on(const char* var) {
  const char* path = getenv(var);
  struct stat st;
  return path != NULL && path[0] != '\0' && stat(path, &st) == 0;
}

static int ends_with(const char* s, size_t n, const char* suffix) {
  const size_t k = strlen(suffix);
  return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Whether fd is a database file a write fault applies to. */
static int is_database_fd(int fd) {
  char link[64];
  char path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, path, sizeof path);
  if (n <= 0 || (size_t)n >= sizeof path) return 0;
  return ends_with(path, (size_t)n, ".db") ||
         ends_with(path, (size_t)n, "-wal") ||
         ends_with(path, (size_t)n, "-journal");
}

static int write_fault(int fd) {
  const int saved = errno; /* the checks must not leak an errno */
  if (!switched_on("QFP_FAULT_WRITE_FILE") || !is_database_fd(fd)) {
    errno = saved;
    return 0;
  }
  atomic_fetch_add(&g_injected, 1);
  errno = EIO;
  return 1;
}

/* The slow disk and the sync fault; returns 1 if the call must fail. */
static int sync_fault(void) {
  const int saved = errno;
  atomic_fetch_add(&g_syncs, 1);
  const char* delay = getenv("QFP_FSYNC_DELAY_MS");
  if (delay != NULL) {
    const long ms = strtol(delay, NULL, 10);
    if (ms > 0) {
      struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
      while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
      }
    }
  }
  if (!switched_on("QFP_FAULT_FILE")) {
    errno = saved;
    return 0;
  }
  atomic_fetch_add(&g_injected, 1);
  errno = EIO;
  return 1;
}

typedef int (*sync_fn)(int);
typedef ssize_t (*write_fn)(int, const void*, size_t);
typedef ssize_t (*pwrite_fn)(int, const void*, size_t, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void*, size_t, off64_t);

QFP_EXPORT int fsync(int fd) {
  REAL(sync_fn, fsync);
  if (sync_fault()) return -1;
  return fn_fsync(fd);
}

QFP_EXPORT int fdatasync(int fd) {
  REAL(sync_fn, fdatasync);
  if (sync_fault()) return -1;
  return fn_fdatasync(fd);
}

QFP_EXPORT ssize_t write(int fd, const void* buf, size_t n) {
  REAL(write_fn, write);
  if (write_fault(fd)) return -1;
  return fn_write(fd, buf, n);
}

QFP_EXPORT ssize_t pwrite(int fd, const void* buf, size_t n, off_t offset) {
  REAL(pwrite_fn, pwrite);
  if (write_fault(fd)) return -1;
  return fn_pwrite(fd, buf, n, offset);
}

QFP_EXPORT ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t offset) {
  REAL(pwrite64_fn, pwrite64);
  if (write_fault(fd)) return -1;
  return fn_pwrite64(fd, buf, n, offset);
}
