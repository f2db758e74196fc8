# The Debian package: in a release build folder,
#
#   cpack -G DEB            (writes tghost_VERSION_ARCH.deb here)
#
# It installs under /usr what `cmake --install` does (the binary, the man
# page, the systemd unit in /lib/systemd/system, the editor annotations)
# and the docs Debian expects: /usr/share/doc/tghost with the copyright,
# the changelogs, the examples, README.md and docs/. Its dependencies are the shared
# libraries the binary links, found by dpkg-shlibdeps (Debian's dpkg-dev),
# so they are whatever the build machine's versions need. The binary is
# stripped. tests/tools/deb_package.sh (ctest package.deb) builds it and
# checks it.

set(TGHOST_DOC_DIR ${CMAKE_INSTALL_DATADIR}/doc/tghost)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/examples/ DESTINATION ${TGHOST_DOC_DIR}/examples)
# The guide and the reference, as Markdown (the man page points at them).
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${TGHOST_DOC_DIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/ DESTINATION ${TGHOST_DOC_DIR}/docs)

# /usr/share/doc/tghost/copyright, in Debian's machine-readable format,
# from LICENSE; the upstream and Debian changelogs, compressed.
file(READ ${CMAKE_SOURCE_DIR}/LICENSE TGHOST_LICENSE_TEXT)
string(REGEX REPLACE "^MIT License\n\n" "" TGHOST_LICENSE_BODY "${TGHOST_LICENSE_TEXT}")
string(REGEX MATCH "Copyright \\(c\\) ([^\n]*)" _ "${TGHOST_LICENSE_TEXT}")
set(TGHOST_COPYRIGHT_HOLDER "${CMAKE_MATCH_1}")
string(REGEX REPLACE "Copyright \\(c\\) [^\n]*\n\n" "" TGHOST_LICENSE_BODY "${TGHOST_LICENSE_BODY}")
string(REGEX REPLACE "\n\n" "\n.\n" TGHOST_LICENSE_BODY "${TGHOST_LICENSE_BODY}")
string(REGEX REPLACE "\n([^\n])" "\n \\1" TGHOST_LICENSE_BODY "${TGHOST_LICENSE_BODY}")
file(WRITE ${CMAKE_BINARY_DIR}/deb/copyright
"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: tghost

Files: *
Copyright: ${TGHOST_COPYRIGHT_HOLDER}
License: Expat
 ${TGHOST_LICENSE_BODY}")
string(TIMESTAMP TGHOST_PACKAGE_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
set(TGHOST_PACKAGE_MAINTAINER "tghost maintainers <tghost@users.noreply.github.com>"
    CACHE STRING "The Maintainer field of the Debian package")
file(WRITE ${CMAKE_BINARY_DIR}/deb/changelog.Debian
"tghost (${PROJECT_VERSION}) unstable; urgency=medium

  * Built from the tghost sources; see changelog.gz (CHANGELOG.md).

 -- ${TGHOST_PACKAGE_MAINTAINER}  ${TGHOST_PACKAGE_DATE}
")
add_custom_command(
  OUTPUT ${CMAKE_BINARY_DIR}/deb/changelog.gz ${CMAKE_BINARY_DIR}/deb/changelog.Debian.gz
  COMMAND gzip -9nc ${CMAKE_SOURCE_DIR}/CHANGELOG.md > ${CMAKE_BINARY_DIR}/deb/changelog.gz
  COMMAND gzip -9nc ${CMAKE_BINARY_DIR}/deb/changelog.Debian > ${CMAKE_BINARY_DIR}/deb/changelog.Debian.gz
  DEPENDS ${CMAKE_SOURCE_DIR}/CHANGELOG.md ${CMAKE_BINARY_DIR}/deb/changelog.Debian
  COMMENT "Compressing the changelogs")
add_custom_target(changelogs ALL DEPENDS ${CMAKE_BINARY_DIR}/deb/changelog.gz
                                         ${CMAKE_BINARY_DIR}/deb/changelog.Debian.gz)
install(FILES ${CMAKE_BINARY_DIR}/deb/copyright ${CMAKE_BINARY_DIR}/deb/changelog.gz
              ${CMAKE_BINARY_DIR}/deb/changelog.Debian.gz
        DESTINATION ${TGHOST_DOC_DIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tghost)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "host for Telegram bots written in Lua")
# The extended description, after the summary above (CPack indents it and
# turns empty lines into " .").
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
"tghost runs a Telegram bot written in Lua 5.4 with grammY's API: long
polling or a webhook, every update in its own coroutine on one event
loop, hot reload of the script, a delivery journal that loses no update
to a crash, and a sandbox that emulates the Bot API in the terminal.

This package has the tghost binary, its man page, a systemd unit that
runs one bot per instance (tghost@NAME) and examples.")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${TGHOST_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS ca-certificates)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
