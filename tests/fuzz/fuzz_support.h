// Small helpers shared by the fuzz targets.
#ifndef QFP_TESTS_FUZZ_FUZZ_SUPPORT_H_
#define QFP_TESTS_FUZZ_FUZZ_SUPPORT_H_

#include <cstdio>
#include <cstdlib>

// A property every input must keep; when broken, says which and aborts, so
// libFuzzer records the input as a crash (assert() would vanish under
// NDEBUG, which RelWithDebInfo sets).
#define QFP_FUZZ_CHECK(condition, ...)                                         \
  do {                                                                         \
    if (!(condition)) {                                                        \
      std::fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__, \
                   #condition);                                                \
      std::fprintf(stderr, __VA_ARGS__);                                       \
      std::fprintf(stderr, "\n");                                              \
      std::abort();                                                            \
    }                                                                          \
  } while (false)

#endif  // QFP_TESTS_FUZZ_FUZZ_SUPPORT_H_
