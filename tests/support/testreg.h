/* Tests are registered where they are written, and nowhere else:
 *
 *   TEST(name) { ... }          a test
 *   TEST_SERIAL(name) { ... }   a heavy test that ctest runs alone
 *
 * Each test binary runs the one test named on its command line.
 * tests/CMakeLists.txt (tghost_tests) reads the same TEST lines from the
 * sources to register each as the ctest "<binary>.<name>", so a test
 * written here is a test run by ctest, with no list to keep in step. */
#ifndef TGHOST_TESTS_TESTREG_H
#define TGHOST_TESTS_TESTREG_H

void test_register(const char *name, void (*run)(void));

/* main() of a test binary: runs the test named by argv[1] after
 * before_each (may be NULL); with no name, lists the tests. */
int test_main(int argc, char **argv, void (*before_each)(void));

#define TEST(name)                                                         \
  static void test_##name(void);                                           \
  __attribute__((constructor)) static void test_register_##name(void) {   \
    test_register(#name, test_##name);                                     \
  }                                                                        \
  static void test_##name(void)
#define TEST_SERIAL(name) TEST(name)

#endif
