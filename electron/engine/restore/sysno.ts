/**
 * x86_64 system call numbers and constants the restore injects that the native layer's SYS table
 * does not list. Owns only numbers.
 */
export const NR = {
  lseek: 8, ioctl: 16, unshare: 272, sethostname: 170, setdomainname: 171, capset: 126, setsid: 112, setpgid: 109, clone3: 435, mremap: 25, dup3: 292, fcntl: 72, chdir: 80, fchdir: 81, chroot: 161, prlimit64: 302,
  eventfd2: 290, close_range: 436, rt_sigaction: 13, rt_sigprocmask: 14, sigaltstack: 131, setitimer: 38,
  open: 2, close: 3, mmap: 9, munmap: 11, mprotect: 10, umask: 95, personality: 135, prctl: 157,
  set_tid_address: 218, set_robust_list: 273, rseq: 334, kill: 62, tgkill: 234, getpid: 39,
  timer_create: 222, signalfd4: 289, timerfd_create: 283, timerfd_settime: 286, epoll_create1: 291, epoll_ctl: 233, inotify_init1: 294, inotify_add_watch: 254, inotify_rm_watch: 255, timer_settime: 223, madvise: 28, mlock: 149, mlock2: 325, flock: 73, shmat: 30, memfd_create: 319, ftruncate: 77, userfaultfd: 323,
  restart_syscall: 219, pipe2: 293, write: 1, socketpair: 53, socket: 41, bind: 49, connect: 42, listen: 50, setsockopt: 54, rt_sigtimedwait: 128, rt_sigqueueinfo: 129, rt_tgsigqueueinfo: 297,
  mlockall: 151, mq_open: 240, sendmsg: 46, getsockopt: 55,
} as const;

export const SIGKILL = 9, SIGSTOP = 19;
export const MREMAP_MAYMOVE = 1, MREMAP_FIXED = 2;
export const PR_SET_NAME = 15, PR_SET_MM = 35, PR_SET_MM_MAP = 14, PR_SET_MM_MAP_SIZE = 15;
export const PR_CAPBSET_DROP = 24, PR_SET_NO_NEW_PRIVS = 38, PR_CAP_AMBIENT = 47, PR_CAP_AMBIENT_RAISE = 2, PR_CAP_AMBIENT_CLEAR_ALL = 4;
export const PR_TIMER_CREATE_RESTORE_IDS = 77;
export const PR_SET_VMA = 0x53564d41;
