// bench/peers/graphile.mjs: graphile-worker in bench/peers' three
// scenarios (common.mjs), with the settings of its documented performance
// test: 24 concurrent jobs, a pool of 25, a local queue of 500 and batched
// completion (completeJobBatchDelay and failJobBatchDelay 0).
//
//   node bench/peers/graphile.mjs backlog|producer|latency [--db URL] [--jobs N] ...
import { loadPeer, main, now } from "./common.mjs";

const { mod: gw, version } = await loadPeer("graphile-worker");

const settings = {
	concurrentJobs: 24,
	maxPoolSize: 25,
	localQueue: { size: 500 },
	completeJobBatchDelay: 0,
	failJobBatchDelay: 0,
};

// Warnings and errors only.
const logger = new gw.Logger(() => (level, message) => {
	if (level === "error" || level === "warning") console.error(`graphile-worker ${level}: ${message}`);
});

async function open(o) {
	const utils = await gw.makeWorkerUtils({ connectionString: o.db, logger });
	await utils.migrate();
	let runner = null;
	return {
		name: "graphile-worker",
		version,
		settings,
		async insert(count, first) {
			const specs = new Array(count);
			for (let k = 0; k < count; k++) specs[k] = { identifier: "noop", payload: { i: first + k } };
			await utils.addJobs(specs);
		},
		async start(onJobs) {
			runner = await gw.run({
				logger,
				noHandleSignals: true,
				preset: { worker: { connectionString: o.db, ...settings } },
				taskList: {
					noop: async (payload) => {
						onJobs([payload], now());
					},
				},
			});
		},
		// Completed jobs are deleted.
		async allDone() {
			return utils.withPgClient(async (c) =>
				(await c.query("SELECT NOT EXISTS (SELECT FROM graphile_worker._private_jobs) AS done")).rows[0].done);
		},
		async addOne(payload) {
			await utils.addJob("noop", payload);
		},
		async stop() {
			if (runner) await runner.stop();
			await utils.release();
		},
	};
}

await main(open);
