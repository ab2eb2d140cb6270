# Warnings live on a private interface target: users of rill::core never inherit them.
add_library(rill_warnings INTERFACE)
target_compile_options(rill_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion -Wnon-virtual-dtor
  -Wold-style-cast -Woverloaded-virtual -Wnull-dereference -Wdouble-promotion -Wimplicit-fallthrough)
