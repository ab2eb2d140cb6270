// `rill stat FILE|-` (rill_stat.cpp): renders rill metrics JSON snapshots as tables.
#pragma once

// argv holds the arguments after `stat`. Returns the process exit status (0, 1 bad input, 2 usage).
int stat_main(int argc, char** argv);
