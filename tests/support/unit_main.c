/* main() of every unit test binary: runs the TEST named on the command
 * line (tests/testreg.h). */
#include <stddef.h>

#include "testreg.h"

int main(int argc, char **argv) { return test_main(argc, argv, NULL); }
