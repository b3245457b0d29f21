#!/bin/sh
# batch-abandoned.sh: dwad records a claim's runs as one batch (dwa.claims)
# and deletes its row once every end of it is committed.  When a batch of
# ends cannot be recorded (here a trigger refuses the task's completion),
# dwad stops renewing that claim batch: its lease runs out, the reaper
# requeues the step, and the task runs again and completes.
. "$(dirname "$0")/../lib/harness.sh"
plan 10

db_setup
sql "CREATE TABLE public.poison (armed boolean NOT NULL);
     INSERT INTO public.poison VALUES (true);
     CREATE FUNCTION public.poison() RETURNS trigger LANGUAGE plpgsql AS \$\$
     BEGIN
         IF NEW.status = 'completed' AND NEW.payload ? 'poison'
            AND (SELECT armed FROM public.poison) THEN
             RAISE EXCEPTION 'poisoned completion of task %', NEW.id;
         END IF;
         RETURN NEW;
     END \$\$;
     CREATE TRIGGER poison BEFORE UPDATE ON dwa.tasks
        FOR EACH ROW EXECUTE FUNCTION public.poison();" >/dev/null ||
	bail "cannot install the trigger"
dwad_start d1 --lease 2s --reap 200ms || bail "dwad d1 did not start"

id=$(submit '{"type": "sleep", "payload": {"ms": 700}}')
wait_until 10 step_is "$id" 0 running || bail "the step never started"
is "$(sql "SELECT count(*) FROM dwa.claims c JOIN dwa.steps s
             ON s.id = ANY (c.step_ids) AND s.run_id = ANY (c.run_ids)
            WHERE s.task_id = $id")|$(sql "SELECT count(*) FROM dwa.runs")" "1|0" \
	"the run is recorded in a claim batch, not in dwa.runs"
wait_until 10 task_done "$id"
wait_until 5 sql_true "SELECT count(*) = 0 FROM dwa.claims"
ok $? "the batch row is deleted once its end is committed"

bad=$(submit '{"type": "sleep", "payload": {"ms": 100, "poison": true}}')
wait_until 10 log_contains d1 "run ends failed: .*poisoned completion of task $bad"
ok $? "the batch of ends with the refused completion fails"
sql "UPDATE public.poison SET armed = false" >/dev/null
is "$(sql "SELECT status || ' ' || attempt FROM dwa.steps WHERE task_id = $bad")" "running 1" \
	"its step is still running, attempt 1, its end lost"
wait_until 10 sql_true "SELECT attempt = 2 FROM dwa.steps WHERE task_id = $bad"
ok $? "the batch is not renewed: once its lease ran out the step is claimed again"
wait_until 10 task_done "$bad"
is "$(task_status "$bad")" completed "the task completes at the second attempt"
log_contains d1 "requeued 1 run"
ok $? "the reaper requeued the run"
is "$(sql "SELECT count(*) FROM dwa.tasks WHERE id = $bad AND steps_done = 1")" 1 \
	"its step counted once"
wait_until 5 sql_true "SELECT count(*) = 0 FROM dwa.claims"
ok $? "no batch row is left"
is "$(sql "SELECT count(*) FROM dwa.runs")" 0 "nor any dwa.runs row"
