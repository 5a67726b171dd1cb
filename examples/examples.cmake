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

# --- WASI preview 2 components --------------------------------------------
# Every example above also gets a component twin, build/examples/<name>.component.wasm:
# the same core module turned into a component by `wasm-tools component new
# --adapt` with the preview-1 adapter of the pinned Wasmtime (the command
# adapter, which exports wasi:cli/run). reactor.c is the exception: its
# twin uses the reactor adapter and exports `work` (world reactor in
# components/wit/worlds.wit), a library component with no wasi:cli/run.
# imports.c has no twin (a core import module such as wasmlet_test cannot
# be adapted); the components that import what the host lacks are written
# in WAT under components/bad/.
#
# components/*.c are the preview-2 programs (sockets, name lookup, HTTP).
# Each names the world of components/wit/worlds.wit it uses in a line
# `// component-world: <world>` and its adapter in `// component-adapter:
# command|reactor` (default command); wit-bindgen's C generator writes that
# world's bindings, which are compiled in, and `wasm-tools component embed`
# records the world before `component new`.
#
# The tools come from scripts/tools.sh (WASMLET_TOOLS_DIR). Without them (a
# checkout whose set-up has not run) the components are skipped with a
# message; scripts/test.sh runs set-up first, so CI always builds them.
if(NOT WASMLET_TOOLS_DIR)
  execute_process(
    COMMAND ${CMAKE_SOURCE_DIR}/scripts/tools.sh --if-installed
    OUTPUT_VARIABLE tools_out OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE tools_rc ERROR_QUIET)
  if(tools_rc EQUAL 0)
    set(WASMLET_TOOLS_DIR ${tools_out} CACHE PATH
        "Component toolchain from scripts/tools.sh (bin/, adapters/, wit/)")
  endif()
endif()
set(COMPONENT_WASMS)
if(NOT WASMLET_TOOLS_DIR OR NOT EXISTS ${WASMLET_TOOLS_DIR}/bin/wasm-tools)
  message(STATUS "examples: the component toolchain is not installed "
                 "(run scripts/tools.sh or scripts/setup.sh, or set WASMLET_TOOLS_DIR): "
                 "skipping the WASI preview 2 component workloads")
else()
  message(STATUS "examples: component toolchain in ${WASMLET_TOOLS_DIR}")
  set(WASM_TOOLS ${WASMLET_TOOLS_DIR}/bin/wasm-tools)
  set(WIT_BINDGEN ${WASMLET_TOOLS_DIR}/bin/wit-bindgen)
  set(ADAPTERS ${WASMLET_TOOLS_DIR}/adapters)
  set(CDIR ${CMAKE_SOURCE_DIR}/examples/components)
  set(GEN ${CMAKE_BINARY_DIR}/examples/components)
  set(CORE ${GEN}/core)
  # The WIT package of the examples, beside the WASI 0.2 WIT of the host.
  set(WIT ${GEN}/wit)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CDIR}/wit/worlds.wit)
  file(MAKE_DIRECTORY ${WIT} ${CORE})
  configure_file(${CDIR}/wit/worlds.wit ${WIT}/worlds.wit COPYONLY)
  file(CREATE_LINK ${WASMLET_TOOLS_DIR}/wit/http/deps ${WIT}/deps SYMBOLIC)

  # component_new(OUT CORE ADAPTER [WORLD]): embeds WORLD (when given) into
  # the core module CORE and adapts it into the component OUT.
  function(component_new out core adapter world)
    get_filename_component(name ${out} NAME)
    set(cmds)
    set(input ${core})
    if(world)
      set(input ${CORE}/${name}.embedded)
      set(cmds COMMAND ${WASM_TOOLS} component embed ${WIT} --world ${world} ${core} -o ${input})
    endif()
    add_custom_command(
      OUTPUT ${out}
      ${cmds}
      COMMAND ${WASM_TOOLS} component new ${input}
              --adapt wasi_snapshot_preview1=${ADAPTERS}/wasi_snapshot_preview1.${adapter}.wasm
              -o ${out}
      DEPENDS ${core} ${WIT}/worlds.wit ${ADAPTERS}/wasi_snapshot_preview1.${adapter}.wasm
      COMMENT "component ${name}")
  endfunction()

  # The twins.
  foreach(src ${EXAMPLE_SOURCES})
    get_filename_component(name ${src} NAME_WE)
    if(name STREQUAL "imports")
      continue()
    elseif(name STREQUAL "reactor")
      component_new(${CMAKE_BINARY_DIR}/examples/${name}.component.wasm
                    ${CMAKE_BINARY_DIR}/examples/${name}.wasm reactor reactor)
    else()
      component_new(${CMAKE_BINARY_DIR}/examples/${name}.component.wasm
                    ${CMAKE_BINARY_DIR}/examples/${name}.wasm command "")
    endif()
    list(APPEND COMPONENT_WASMS ${CMAKE_BINARY_DIR}/examples/${name}.component.wasm)
  endforeach()

  # The preview-2 programs.
  file(GLOB P2_SOURCES CONFIGURE_DEPENDS ${CDIR}/*.c)
  set(BOUND_WORLDS)
  foreach(src ${P2_SOURCES})
    get_filename_component(name ${src} NAME_WE)
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})
    file(STRINGS ${src} world_line REGEX "^// component-world: ")
    file(STRINGS ${src} adapter_line REGEX "^// component-adapter: ")
    file(STRINGS ${src} flag_lines REGEX "^// wasm-flags: ")
    if(NOT world_line)
      message(FATAL_ERROR "${src}: no `// component-world:` line")
    endif()
    string(REGEX REPLACE "^// component-world: *" "" world "${world_line}")
    set(adapter command)
    if(adapter_line)
      string(REGEX REPLACE "^// component-adapter: *" "" adapter "${adapter_line}")
    endif()
    set(extra_flags)
    foreach(line ${flag_lines})
      string(REGEX REPLACE "^// wasm-flags: " "" line "${line}")
      separate_arguments(line_flags UNIX_COMMAND "${line}")
      list(APPEND extra_flags ${line_flags})
    endforeach()
    # One set of bindings per world, shared by the programs that use it.
    string(REPLACE "-" "_" cworld ${world})
    set(bind ${GEN}/bindings/${world})
    if(NOT world IN_LIST BOUND_WORLDS)
      add_custom_command(
        OUTPUT ${bind}/${cworld}.c ${bind}/${cworld}.h
        COMMAND ${WIT_BINDGEN} c --world wasmlet:examples/${world} --no-object-file
                --out-dir ${bind} ${WIT}
        DEPENDS ${WIT}/worlds.wit
        COMMENT "wit-bindgen c ${world}")
      # --no-object-file: the world is recorded by `component embed`, not by
      # wit-bindgen's object file, whose symbol the bindings still name.
      file(WRITE ${bind}/force_link.c
           "/* generated by examples.cmake: the world is embedded by wasm-tools */\n"
           "void __component_type_object_force_link_${cworld}(void);\n"
           "void __component_type_object_force_link_${cworld}(void) {}\n")
      list(APPEND BOUND_WORLDS ${world})
    endif()
    set(core ${CORE}/${name}.wasm)
    # The generated bindings leave some parameters unused.
    add_custom_command(
      OUTPUT ${core}
      COMMAND ${WASI_CLANG} --target=wasm32-wasi -O2 -Wall -Wextra -Werror
              -Wno-unused-parameter -Wl,--strip-all -I ${bind} -I ${CDIR} ${extra_flags}
              -o ${core} ${src} ${bind}/${cworld}.c ${bind}/force_link.c
      DEPENDS ${src} ${bind}/${cworld}.c ${bind}/${cworld}.h ${CDIR}/wasi_errors.h
              ${CDIR}/net_addr.h
      COMMENT "wasm32-wasi ${name} (world ${world})")
    component_new(${CMAKE_BINARY_DIR}/examples/${name}.component.wasm ${core} ${adapter} ${world})
    list(APPEND COMPONENT_WASMS ${CMAKE_BINARY_DIR}/examples/${name}.component.wasm)
  endforeach()

  # The broken or unrunnable components of the tests, in examples/bad/.
  set(BAD_COMPONENTS)
  foreach(bad component-truncated component-keyvalue component-wasi03)
    list(APPEND BAD_COMPONENTS ${BAD_DIR}/${bad}.wasm)
  endforeach()
  add_custom_command(
    OUTPUT ${BAD_COMPONENTS}
    COMMAND sh ${CDIR}/badcomponents.sh ${BAD_DIR} ${WASM_TOOLS}
            ${CMAKE_BINARY_DIR}/examples/hello.component.wasm
    DEPENDS ${CDIR}/badcomponents.sh ${CDIR}/bad/keyvalue.wat ${CDIR}/bad/wasi03.wat
            ${CMAKE_BINARY_DIR}/examples/hello.component.wasm
    COMMENT "broken components for the tests in examples/bad/")
  list(APPEND COMPONENT_WASMS ${BAD_COMPONENTS})
endif()

add_custom_target(components ALL DEPENDS ${COMPONENT_WASMS})
