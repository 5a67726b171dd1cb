# Builds every examples/*.c into build/examples/<name>.wasm with Debian's
# clang for wasm32-wasi (wasi-libc + libclang-rt-14-dev-wasm32). These are
# the sample workloads of the README and the modules the tests run.
#
# One compile command for all of them. An example that needs more says so in
# a line of its own, `// wasm-flags: <flags>` (reactor.c: no _start), which
# is appended to its command. The line is read when CMake configures, so
# every example source is a configure dependency: editing one re-runs the
# (cached, quick) configure step and picks up a changed flags line.
#
# badmodules.sh then writes the deliberately broken modules of the tests
# into build/examples/bad/ (one is cut from hello.wasm).
find_program(WASI_CLANG NAMES clang clang-14 REQUIRED)
file(GLOB EXAMPLE_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/examples/*.c)
set(EXAMPLE_WASMS)
foreach(src ${EXAMPLE_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  set(out ${CMAKE_BINARY_DIR}/examples/${name}.wasm)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})
  file(STRINGS ${src} flag_lines REGEX "^// wasm-flags: ")
  set(extra_flags)
  foreach(line ${flag_lines})
    string(REGEX REPLACE "^// wasm-flags: " "" line "${line}")
    separate_arguments(line_flags UNIX_COMMAND "${line}")
    list(APPEND extra_flags ${line_flags})
  endforeach()
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/examples
    COMMAND ${WASI_CLANG} --target=wasm32-wasi -O2 -Wall -Wextra -Werror
            -Wl,--strip-all ${extra_flags} -o ${out} ${src}
    DEPENDS ${src}
    COMMENT "wasm32-wasi ${name}.wasm")
  list(APPEND EXAMPLE_WASMS ${out})
endforeach()

set(BAD_DIR ${CMAKE_BINARY_DIR}/examples/bad)
set(BAD_MODULES)
foreach(bad notwasm truncated empty component nostart nostart-export)
  list(APPEND BAD_MODULES ${BAD_DIR}/${bad}.wasm)
endforeach()
add_custom_command(
  OUTPUT ${BAD_MODULES}
  COMMAND sh ${CMAKE_SOURCE_DIR}/examples/badmodules.sh ${BAD_DIR}
          ${CMAKE_BINARY_DIR}/examples/hello.wasm
  DEPENDS ${CMAKE_SOURCE_DIR}/examples/badmodules.sh ${CMAKE_BINARY_DIR}/examples/hello.wasm
  COMMENT "broken modules for the tests in examples/bad/")

add_custom_target(examples ALL DEPENDS ${EXAMPLE_WASMS} ${BAD_MODULES})
