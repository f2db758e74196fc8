/* main() of every end-to-end test binary: runs the TEST named on the
 * command line (tests/testreg.h) with the harness set up. */
#include "harness.h"

int main(int argc, char **argv) {
  return test_main(argc, argv, harness_before_test);
}
