# Public headers compile on their own (STYLE.md, "Headers are contracts"; the idea of seastar's
# CheckHeaders.cmake). rill_add_header_check(TARGET INCLUDE_DIR LINK_TARGET [EXCLUDE header...]) generates one
# translation unit per header under INCLUDE_DIR/rill (recursively, detail/ and codec/ included) that holds only
# `#include "rill/<header>"`, and builds them into the OBJECT library TARGET with LINK_TARGET's usage
# requirements and rill's warnings. TARGET is part of the default build, so a header that leans on an include
# it does not spell out breaks the build where it is, not in some user's translation unit. EXCLUDE names
# headers (relative to INCLUDE_DIR, e.g. rill/detail/x.hpp) left out; say why at the call site.
# New headers are picked up at the next build (CONFIGURE_DEPENDS).
function(rill_add_header_check target include_dir link_target)
  cmake_parse_arguments(PARSE_ARGV 3 arg "" "" "EXCLUDE")
  file(GLOB_RECURSE headers CONFIGURE_DEPENDS RELATIVE ${include_dir} ${include_dir}/rill/*.hpp)
  list(SORT headers)
  if(arg_EXCLUDE)
    list(REMOVE_ITEM headers ${arg_EXCLUDE})
  endif()
  set(sources)
  foreach(header IN LISTS headers)
    string(MAKE_C_IDENTIFIER ${header} name)
    set(source ${CMAKE_CURRENT_BINARY_DIR}/${target}/${name}.cpp)
    # file(CONFIGURE) rewrites the file only when its content changes, so reconfiguring rebuilds nothing.
    file(CONFIGURE OUTPUT ${source} CONTENT "#include \"${header}\"\n" @ONLY)
    list(APPEND sources ${source})
  endforeach()
  add_library(${target} OBJECT ${sources})
  target_link_libraries(${target} PRIVATE ${link_target} $<BUILD_INTERFACE:rill_warnings>)
endfunction()
