// bench/peers/pgboss.mjs: pg-boss in bench/peers' three scenarios
// (common.mjs): one queue "noop", a worker fetching 100 jobs at a time,
// polling at the smallest interval allowed (0.5 s, with NOTIFY on or not),
// fetching again at once while fetches come back full (burstWhenBatchFull),
// and woken by LISTEN/NOTIFY when a job is added (useListenNotify, queue
// notify).
//
//   node bench/peers/pgboss.mjs backlog|producer|latency [--db URL] [--jobs N] ...
import { loadPeer, main, now } from "./common.mjs";

const { mod: pgboss, version } = await loadPeer("pg-boss");

const constructorSettings = { useListenNotify: true };
const queueSettings = { notify: true };
const workSettings = { batchSize: 100, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5,
	burstWhenBatchFull: true };

async function open(o, { produceOnly }) {
	// The producer's child adds jobs only: no maintenance, no listener.
	const boss = new pgboss.PgBoss(produceOnly
		? { connectionString: o.db, supervise: false, schedule: false, migrate: false }
		: { connectionString: o.db, ...constructorSettings });
	boss.on("error", (e) => console.error(`pg-boss error: ${e && e.message || e}`));
	const warned = new Set();
	boss.on("warning", (w) => {
		// Once per kind; a backlog of 20,000 jobs is one.
		const kind = w && (w.type || w.message) || String(w);
		if (warned.has(kind)) return;
		warned.add(kind);
		console.error(`pg-boss warning: ${w && w.message || kind}`);
	});
	await boss.start();
	if (!produceOnly) await boss.createQueue("noop", queueSettings);
	const db = boss.getDb();
	return {
		name: "pg-boss",
		version,
		settings: { ...constructorSettings, queue: queueSettings, work: workSettings },
		async insert(count, first) {
			const jobs = new Array(count);
			for (let k = 0; k < count; k++) jobs[k] = { data: { i: first + k } };
			await boss.insert("noop", jobs);
		},
		async start(onJobs) {
			await boss.work("noop", workSettings, async (jobs) => {
				onJobs(jobs.map((j) => j.data), now());
			});
		},
		async allDone(n) {
			const r = await db.executeSql("SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'noop' AND state = 'completed'");
			return r.rows[0].n >= n;
		},
		async addOne(payload) {
			await boss.send("noop", payload);
		},
		async stop() {
			await boss.stop({ graceful: true, timeout: 10000 });
		},
	};
}

await main(open);
