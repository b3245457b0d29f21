// bench/peers/common.mjs: what graphile.mjs and pgboss.mjs share: the
// command line, loading a peer from the install directory, the clock, and
// the three scenarios' timing and output.
import { createRequire } from "node:module";
import { fork } from "node:child_process";
import { homedir } from "node:os";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

export const usage = `usage: node bench/peers/PEER.mjs SCENARIO [options]

SCENARIO is backlog, producer or latency.  Prints one JSON line.
  --db URL        the PostgreSQL connection string (default: $DATABASE_URL)
  --jobs N        backlog and producer: jobs (default 20000)
  --batch N       jobs per insert statement (default 1000)
  --latency-jobs N  latency: jobs added one at a time (default 500)
  --gap-ms MS     latency: pause after each add (default 2)
  --timeout S     give up after S seconds of waiting for the jobs (default 600)
The peers are loaded from $DWA_PEERS_DIR (default ~/.cache/dwa-peers),
where bench/peers/install puts them.`;

export function parseArgs(argv) {
	const o = { scenario: null, db: process.env.DATABASE_URL, jobs: 20000, batch: 1000,
		latencyJobs: 500, gapMs: 2, timeout: 600, role: null };
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		const val = () => {
			if (i + 1 >= argv.length) die(`${a} needs a value`);
			return argv[++i];
		};
		const num = () => {
			const v = Number(val());
			if (!(v >= 0)) die(`${a}: not a number`);
			return v;
		};
		switch (a) {
		case "--db": o.db = val(); break;
		case "--jobs": o.jobs = num(); break;
		case "--batch": o.batch = num(); break;
		case "--latency-jobs": o.latencyJobs = num(); break;
		case "--gap-ms": o.gapMs = num(); break;
		case "--timeout": o.timeout = num(); break;
		case "--role": o.role = val(); break;  // internal: the producer's child process
		case "-h": case "--help": console.log(usage); process.exit(0);
		default:
			if (a.startsWith("-") || o.scenario) die(`unknown argument ${a}`);
			o.scenario = a;
		}
	}
	if (!o.role && !["backlog", "producer", "latency"].includes(o.scenario))
		die("SCENARIO must be backlog, producer or latency");
	if (!o.db) die("no database: give --db or set DATABASE_URL");
	if (!(o.batch >= 1) || !(o.jobs >= 1) || !(o.latencyJobs >= 1)) die("--jobs, --batch and --latency-jobs must be at least 1");
	return o;
}

export function die(msg) {
	console.error(`bench/peers: ${msg}`);
	process.exit(2);
}

export const peersDir = process.env.DWA_PEERS_DIR || join(homedir(), ".cache", "dwa-peers");

// loadPeer(NAME): the package NAME as installed in peersDir (an ES module:
// resolved there, then imported by path), and its version.
export async function loadPeer(name) {
	const req = createRequire(join(peersDir, "node_modules", "_"));
	let entry;
	try {
		entry = req.resolve(name);
	} catch {
		die(`${name} is not installed in ${peersDir}: run bench/peers/install`);
	}
	const pkg = JSON.parse(readFileSync(join(peersDir, "node_modules", name, "package.json"), "utf8"));
	return { mod: await import(pathToFileURL(entry).href), version: pkg.version };
}

// The wall clock in ms with sub-ms precision, comparable between processes.
export const now = () => performance.timeOrigin + performance.now();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// percentile(sorted, p): linear interpolation between the closest ranks,
// as PostgreSQL's percentile_cont (bench/run's latency figures).
export function percentile(sorted, p) {
	if (sorted.length === 0) return null;
	const x = p * (sorted.length - 1);
	const lo = Math.floor(x), hi = Math.ceil(x);
	return sorted[lo] + (sorted[hi] - sorted[lo]) * (x - lo);
}

const r2 = (x) => Math.round(x * 100) / 100;

export function emit(obj) {
	console.log(JSON.stringify(obj));
}

// A counter of handled jobs that a scenario can wait on.
export function counter() {
	let n = 0, want = Infinity, wake = null;
	return {
		add(k) {
			n += k;
			if (n >= want && wake) { const w = wake; wake = null; w(); }
		},
		get n() { return n; },
		// reach(N, S): resolves once N jobs are counted; rejects after S seconds.
		reach(target, seconds) {
			if (n >= target) return Promise.resolve();
			want = target;
			return new Promise((resolve, reject) => {
				const t = setTimeout(() => reject(new Error(`only ${n} of ${target} jobs handled after ${seconds} s`)), seconds * 1000);
				wake = () => { clearTimeout(t); resolve(); };
			});
		},
	};
}

// waitFor(check, S): calls async check() every 10 ms until it is true.
export async function waitFor(check, seconds, what) {
	const end = now() + seconds * 1000;
	while (!(await check())) {
		if (now() > end) throw new Error(`${what} still not true after ${seconds} s`);
		await sleep(10);
	}
}

// A peer is an object with:
//   name, version, settings                 for the output
//   insert(count, first)                    inserts jobs {i} first..first+count-1 in one statement
//   start(onJobs)                           starts the worker; onJobs(payloads, t) at each handler start
//   allDone(n)                              true once n jobs are completed in the database
//   addOne(payload)                         one committed add (latency)
//   stop()                                  stops everything
// and open(o) makes one from the options (for the producer's child too).

// insertAll(peer, o): o.jobs jobs, o.batch a statement, one after the other.
async function insertAll(peer, o) {
	for (let i = 0; i < o.jobs; i += o.batch)
		await peer.insert(Math.min(o.batch, o.jobs - i), i);
}

export async function main(open) {
	const o = parseArgs(process.argv.slice(2));
	try {
		if (o.role === "producer") {
			// The producer scenario's child: insert, report the times.
			const peer = await open(o, { produceOnly: true });
			process.send({ ready: true });
			await new Promise((r) => process.once("message", r));
			const t0 = now();
			await insertAll(peer, o);
			const t1 = now();
			await peer.stop();
			process.send({ t0, t1 }, () => process.exit(0));
			return;
		}
		const peer = await open(o, {});
		const out = { peer: peer.name, version: peer.version, scenario: o.scenario };
		const handled = counter();
		if (o.scenario === "backlog") {
			const t0 = now();
			await insertAll(peer, o);
			const t1 = now();
			await peer.start((payloads) => handled.add(payloads.length));
			await handled.reach(o.jobs, o.timeout);
			await waitFor(() => peer.allDone(o.jobs), o.timeout, "all jobs completed");
			const t2 = now();
			Object.assign(out, { jobs: o.jobs, batch: o.batch, insert_jobs_per_s: Math.round(o.jobs * 1000 / (t1 - t0)),
				seconds: r2((t2 - t1) / 1000), jobs_per_s: Math.round(o.jobs * 1000 / (t2 - t1)) });
		} else if (o.scenario === "producer") {
			// The worker runs idle; a child process inserts, as an application would.
			await peer.start((payloads) => handled.add(payloads.length));
			const args = ["--role", "producer", "--db", o.db, "--jobs", String(o.jobs), "--batch", String(o.batch)];
			const child = fork(process.argv[1], args, { stdio: ["ignore", "inherit", "inherit", "ipc"] });
			const exited = new Promise((_, reject) => child.once("exit", (code) => {
				if (code !== 0) reject(new Error(`the producer exited with ${code}`));
			}));
			const msg = () => Promise.race([new Promise((r) => child.once("message", r)), exited]);
			await msg();  // ready: connected
			const times = msg();
			child.send({ go: true });
			const { t0, t1 } = await times;
			await handled.reach(o.jobs, o.timeout);
			await waitFor(() => peer.allDone(o.jobs), o.timeout, "all jobs completed");
			const t2 = now();
			Object.assign(out, { jobs: o.jobs, batch: o.batch, seconds: r2((t2 - t0) / 1000),
				jobs_per_s: Math.round(o.jobs * 1000 / (t2 - t0)),
				insert_jobs_per_s: Math.round(o.jobs * 1000 / (t1 - t0)) });
		} else {
			// latency: the handler gets the time taken just before the add.
			const lat = [];
			await peer.start((payloads, t) => {
				for (const p of payloads) lat.push(t - p.t);
				handled.add(payloads.length);
			});
			await sleep(500);  // let the worker settle into idle
			for (let i = 0; i < o.latencyJobs; i++) {
				await peer.addOne({ i, t: now() });
				await sleep(o.gapMs);
			}
			await handled.reach(o.latencyJobs, o.timeout);
			lat.sort((a, b) => a - b);
			Object.assign(out, { jobs: o.latencyJobs, gap_ms: o.gapMs,
				p50_ms: r2(percentile(lat, 0.5)), p95_ms: r2(percentile(lat, 0.95)),
				p99_ms: r2(percentile(lat, 0.99)), max_ms: r2(lat[lat.length - 1]) });
		}
		out.settings = peer.settings;
		await peer.stop();
		emit(out);
		process.exit(0);
	} catch (e) {
		console.error(`bench/peers: ${o.scenario || o.role}: ${e && e.stack || e}`);
		process.exit(1);
	}
}
