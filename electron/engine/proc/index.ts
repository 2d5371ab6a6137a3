/** Parsers for /proc/PID/*: maps/smaps, stat/status/auxv/limits/timers/cmdline/environ, fds + fdinfo, pagemap, children. */
export * from './maps';
export * from './stat';
export * from './fds';
export * from './pagemap';
export * from './unix-sockets';
export * from './children';
