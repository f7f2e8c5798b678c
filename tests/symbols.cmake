# Test binaries with known function names for the symbolization tests
# (tests/unit/elf_symbols_test.cpp, tests/unit/symbolizer_test.cpp), from tests/support/symtest.
# Included from tests/CMakeLists.txt after kvmprof_unit_tests is defined. They are built
# without kvmprof::options on purpose: no sanitizer runtime in a library the tests dlopen(), in
# a program they run, or in a static executable without libc.
set(SYMTEST_SOURCES ${CMAKE_CURRENT_LIST_DIR}/support/symtest)
set(SYMTEST_OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/symtest)

# A shared library with .symtab and a build-id, and another with a build-id of its own.
add_library(kvmprof_symtest_lib SHARED ${SYMTEST_SOURCES}/symtest_lib.cpp)
add_library(kvmprof_symtest_other SHARED ${SYMTEST_SOURCES}/symtest_other.cpp)
target_link_options(kvmprof_symtest_lib PRIVATE -Wl,--build-id=sha1)
target_link_options(kvmprof_symtest_other PRIVATE -Wl,--build-id=sha1)
# A PIE executable without build-id.
add_executable(kvmprof_symtest_main ${SYMTEST_SOURCES}/symtest_main.cpp)
target_compile_options(kvmprof_symtest_main PRIVATE -fPIE)
target_link_options(kvmprof_symtest_main PRIVATE -pie -Wl,--build-id=none)
# A static executable without libc, hence without .dynsym.
add_executable(kvmprof_symtest_bare ${SYMTEST_SOURCES}/symtest_bare.cpp)
target_link_options(kvmprof_symtest_bare PRIVATE -static -nostdlib -Wl,--build-id=sha1)
set_target_properties(kvmprof_symtest_lib kvmprof_symtest_other kvmprof_symtest_main
                      kvmprof_symtest_bare PROPERTIES
  LIBRARY_OUTPUT_DIRECTORY ${SYMTEST_OUTPUT} RUNTIME_OUTPUT_DIRECTORY ${SYMTEST_OUTPUT})

# Stripped copies: the library keeps only .dynsym, the static executable no symbol table at all.
set(SYMTEST_LIB_DYNSYM ${SYMTEST_OUTPUT}/libsymtest_dynsym.so)
set(SYMTEST_BARE_STRIPPED ${SYMTEST_OUTPUT}/symtest_bare_stripped)
add_custom_command(OUTPUT ${SYMTEST_LIB_DYNSYM}
  COMMAND ${CMAKE_STRIP} --strip-all -o ${SYMTEST_LIB_DYNSYM} $<TARGET_FILE:kvmprof_symtest_lib>
  DEPENDS kvmprof_symtest_lib VERBATIM)
add_custom_command(OUTPUT ${SYMTEST_BARE_STRIPPED}
  COMMAND ${CMAKE_STRIP} --strip-all -o ${SYMTEST_BARE_STRIPPED} $<TARGET_FILE:kvmprof_symtest_bare>
  DEPENDS kvmprof_symtest_bare VERBATIM)
add_custom_target(kvmprof_symtest_stripped DEPENDS ${SYMTEST_LIB_DYNSYM} ${SYMTEST_BARE_STRIPPED})

add_dependencies(kvmprof_unit_tests kvmprof_symtest_lib kvmprof_symtest_other kvmprof_symtest_main
                 kvmprof_symtest_stripped)
target_compile_definitions(kvmprof_unit_tests PRIVATE
  KVMPROF_SYMTEST_LIB="$<TARGET_FILE:kvmprof_symtest_lib>"
  KVMPROF_SYMTEST_LIB_DYNSYM="${SYMTEST_LIB_DYNSYM}"
  KVMPROF_SYMTEST_OTHER="$<TARGET_FILE:kvmprof_symtest_other>"
  KVMPROF_SYMTEST_EXE="$<TARGET_FILE:kvmprof_symtest_main>"
  KVMPROF_SYMTEST_BARE_STRIPPED="${SYMTEST_BARE_STRIPPED}")
