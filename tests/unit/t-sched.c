/*
 * t-sched.c: --type-limit groups: which group a type falls in (the first
 * pattern it matches) and the array literal each group's claim sends.
 */
#include <stdlib.h>

#include "sched.h"
#include "tap.h"

int
main(void)
{
	struct sched_type_limit	 limits[] = {
		{ "video.*", 1 }, { "audio.*", 4 }, { "*.gpu", 2 },
		{ "video.*", 9 },
	};
	struct sched_config	 cfg = { .type_limits = limits,
				     .ntype_limits = 4 };
	struct sched_config	 none = { .ntype_limits = 0 };
	char			*types[] = { "noop", "video.cut", "audio.mix",
				     "text.gpu", "video.gpu", "say \"hi\"",
				     "back\\slash", "audio.norm" };
	const int		 ntypes = 8;
	char			*lit;

	tap_plan(13);

	tap_ok(sched_type_group(&cfg, "noop") == -1,
	    "a type no pattern matches is in group -1");
	tap_ok(sched_type_group(&cfg, "video.cut") == 0,
	    "video.cut is in the group of video.*");
	tap_ok(sched_type_group(&cfg, "audio.mix") == 1,
	    "audio.mix is in the group of audio.*");
	tap_ok(sched_type_group(&cfg, "text.gpu") == 2,
	    "text.gpu is in the group of *.gpu");
	tap_ok(sched_type_group(&cfg, "video.gpu") == 0,
	    "video.gpu matches video.* and *.gpu: the first pattern wins");
	tap_ok(sched_type_group(&none, "video.cut") == -1,
	    "without --type-limit every type is in group -1");

	lit = sched_types_literal(&cfg, types, ntypes, -1);
	tap_is_str(lit, "{\"noop\",\"say \\\"hi\\\"\",\"back\\\\slash\"}",
	    "group -1: the unmatched types, quotes and backslashes escaped");
	free(lit);
	lit = sched_types_literal(&cfg, types, ntypes, 0);
	tap_is_str(lit, "{\"video.cut\",\"video.gpu\"}",
	    "group 0: video.cut and video.gpu");
	free(lit);
	lit = sched_types_literal(&cfg, types, ntypes, 1);
	tap_is_str(lit, "{\"audio.mix\",\"audio.norm\"}",
	    "group 1: both audio types, in the daemon's order");
	free(lit);
	lit = sched_types_literal(&cfg, types, ntypes, 2);
	tap_is_str(lit, "{\"text.gpu\"}", "group 2: text.gpu only");
	free(lit);
	lit = sched_types_literal(&cfg, types, ntypes, 3);
	tap_ok(lit == NULL,
	    "a pattern every type matched earlier has no types: NULL");
	free(lit);
	lit = sched_types_literal(&none, types, 0, -1);
	tap_ok(lit == NULL, "no types at all: NULL");
	free(lit);
	lit = sched_types_literal(&none, types, ntypes, -1);
	tap_ok(lit != NULL && strlen(lit) > 2 && lit[0] == '{',
	    "without --type-limit, one group of every type");
	free(lit);
	return (tap_done());
}
