-- validation.sql: every rejection of SPEC section 2, through dwa.submit and
-- through a plain INSERT INTO dwa.tasks.  Each is checked for its SQLSTATE
-- (22023), its exact message, the field it names (DETAIL), and for nothing
-- having been stored.
BEGIN;
SELECT plan(362);

-- Something stored already, so that "nothing stored" compares real counts.
SELECT isnt(dwa.submit('{"type":"echo","payload":{"seed":1}}'), NULL, 'a single-step task is accepted');
SELECT isnt(dwa.submit('{"type":"pipe","steps":[{"task":"echo"},{"task":"noop"}]}'), NULL,
    'a pipeline is accepted');

CREATE FUNCTION pg_temp.stored() RETURNS text LANGUAGE sql AS $$
    SELECT format('tasks=%s steps=%s', (SELECT count(*) FROM dwa.tasks),
        (SELECT count(*) FROM dwa.steps))
$$;
CREATE TEMP TABLE baseline AS SELECT pg_temp.stored() AS s;

-- The DETAIL of the error p_sql raises ('' when it raises none).
CREATE FUNCTION pg_temp.detail_of(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    EXECUTE p_sql;
    RETURN '';
EXCEPTION WHEN others THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RETURN d;
END
$$;

-- rejects: p_sql raises 22023 with exactly p_msg, names p_field (when not
-- NULL) and stores nothing: two or three assertions.
CREATE FUNCTION pg_temp.rejects(p_sql text, p_msg text, p_field text, p_desc text)
RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    RETURN NEXT throws_ok(p_sql, '22023', p_msg, p_desc);
    IF p_field IS NOT NULL THEN
        RETURN NEXT is(pg_temp.detail_of(p_sql), 'field: ' || p_field,
            p_desc || ': names the field');
    END IF;
    RETURN NEXT is(pg_temp.stored(), (SELECT s FROM baseline), p_desc || ': nothing stored');
END
$$;

SELECT is((SELECT s FROM baseline), 'tasks=2 steps=3', 'the baseline has rows to compare');

-- ---------------------------------------------------------------------
-- Malformed JSON and the shape of the definition.

SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":'::text)$$,
    'malformed JSON: invalid input syntax for type json', '(root)',
    'submit(text): truncated JSON');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo",}'::text)$$,
    'malformed JSON: invalid input syntax for type json', '(root)',
    'submit(text): trailing comma');
SELECT pg_temp.rejects($$SELECT dwa.submit('[{"type":"echo"}]'::jsonb)$$,
    'task definition: must be a JSON object', '(root)',
    'submit: an array is not a task definition');
SELECT pg_temp.rejects($$SELECT dwa.submit(NULL::jsonb)$$,
    'task definition: must be a JSON object', '(root)',
    'submit: NULL is not a task definition');

-- ---------------------------------------------------------------------
-- Wrong types.

SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":5}'::jsonb)$$,
    'type: must be a string', 'type', 'submit: type not a string');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":null}'::jsonb)$$,
    'type: must be a string', 'type', 'submit: type null');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":""}'::jsonb)$$,
    'type: must be a non-empty name', 'type', 'submit: type empty');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type) VALUES ('')$$,
    'type: must be a non-empty name', 'type', 'INSERT: type empty');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","queue":7}'::jsonb)$$,
    'queue: must be a string', 'queue', 'submit: queue not a string');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","priority":"high"}'::jsonb)$$,
    'priority: must be an integer between -1000000 and 1000000', 'priority',
    'submit: priority a string');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","priority":1.5}'::jsonb)$$,
    'priority: must be an integer between -1000000 and 1000000', 'priority',
    'submit: priority a fraction');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","idempotencyKey":42}'::jsonb)$$,
    'idempotencyKey: must be a non-empty string', 'idempotencyKey',
    'submit: idempotencyKey not a string');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":{"a":{"task":"echo"}}}'::jsonb)$$,
    'steps: must be an array', 'steps', 'submit: steps an object');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '{"a":{"task":"echo"}}')$$,
    'steps: must be an array', 'steps', 'INSERT: steps an object');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"task":"echo"},"noop"]}'::jsonb)$$,
    'steps[1]: must be an object', 'steps[1]', 'submit: a step not an object');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[{"task":"echo"},["noop"]]')$$,
    'steps[1]: must be an object', 'steps[1]', 'INSERT: a step not an object');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo"},{"id":"b","task":"echo","dependsOn":"a"}]}'::jsonb)$$,
    'step "b": dependsOn must be an array of step ids', 'steps[1].dependsOn',
    'submit: dependsOn not an array');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[{"id":"a","task":"echo"},{"id":"b","task":"echo","dependsOn":"a"}]')$$,
    'step "b": dependsOn must be an array of step ids', 'steps[1].dependsOn',
    'INSERT: dependsOn not an array');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo"},{"id":"b","task":"echo","dependsOn":[{"id":"a"}]}]}'::jsonb)$$,
    'step "b": dependsOn entries must be step ids', 'steps[1].dependsOn',
    'submit: a dependsOn entry not an id');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","forEach":5}]}'::jsonb)$$,
    'step "a": forEach must be a template string or an array', 'steps[0].forEach',
    'submit: forEach a number');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[{"id":"a","task":"echo","forEach":{"x":1}}]')$$,
    'step "a": forEach must be a template string or an array', 'steps[0].forEach',
    'INSERT: forEach an object');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","runAt":"tomorrow-ish"}'::jsonb)$$,
    'runAt: "tomorrow-ish" is not a timestamp', 'runAt', 'submit: runAt not a timestamp');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","runAt":1767261600}'::jsonb)$$,
    'runAt: must be an ISO 8601 timestamp string', 'runAt', 'submit: runAt a number');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","timeout":"soon"}'::jsonb)$$,
    'timeout: "soon" is not a duration (use e.g. "500ms", "30s", "10m", "2h", "7d")', 'timeout',
    'submit: timeout not a duration');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","timeout":true}'::jsonb)$$,
    'timeout: expected a duration such as "30s" or "10m", got boolean', 'timeout',
    'submit: timeout a boolean');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","timeout":-5}'::jsonb)$$,
    'timeout: duration must not be negative', 'timeout',
    'submit: timeout negative');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","timeout":"0s"}'::jsonb)$$,
    'timeout: must be greater than 0', 'timeout', 'submit: timeout 0s');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","timeout":0,"steps":[{"task":"echo"}]}'::jsonb)$$,
    'timeout: must be greater than 0', 'timeout', 'submit: timeout 0 on a multi-step task');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, timeout) VALUES ('echo', interval '0')$$,
    'timeout: must be greater than 0', 'timeout', 'INSERT: timeout 0');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, timeout) VALUES ('echo', interval '-5 seconds')$$,
    'timeout: must be greater than 0', 'timeout', 'INSERT: timeout negative');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","timeout":"10 parsecs"}]}'::jsonb)$$,
    'step "a": timeout: "10 parsecs" is not a duration (use e.g. "500ms", "30s", "10m", "2h", "7d")',
    'steps[0].timeout', 'submit: step timeout not a duration');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[{"id":"a","task":"echo","timeout":"soon"}]')$$,
    'step "a": timeout: "soon" is not a duration (use e.g. "500ms", "30s", "10m", "2h", "7d")',
    'steps[0].timeout', 'INSERT: step timeout not a duration');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo"},{"id":"b","task":"echo","timeout":"0s"}]}'::jsonb)$$,
    'step "b": timeout: must be greater than 0', 'steps[1].timeout', 'submit: step timeout 0s');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[{"id":"a","task":"echo","timeout":0}]')$$,
    'step "a": timeout: must be greater than 0', 'steps[0].timeout', 'INSERT: step timeout 0');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","timeout":-1}]}'::jsonb)$$,
    'step "a": timeout: duration must not be negative', 'steps[0].timeout',
    'submit: step timeout negative');

-- Retry policies.
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","retry":{"attempts":0}}'::jsonb)$$,
    'retry.attempts: must be an integer from 1 to 1000', 'retry.attempts',
    'submit: retry.attempts 0');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","retry":{"attempts":2.5}}'::jsonb)$$,
    'retry.attempts: must be an integer from 1 to 1000', 'retry.attempts',
    'submit: retry.attempts a fraction');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, retry) VALUES ('echo', '{"attempts":-1}')$$,
    'retry.attempts: must be an integer from 1 to 1000', 'retry.attempts',
    'INSERT: retry.attempts < 1');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","retry":{"attempts":0}}]}'::jsonb)$$,
    'step "a": retry.attempts: must be an integer from 1 to 1000', 'step "a": retry.attempts',
    'submit: step retry.attempts 0');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","retry":{"backoff":{"factor":0.5}}}'::jsonb)$$,
    'retry.backoff.factor: must be at least 1', 'retry.backoff.factor',
    'submit: backoff.factor < 1');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, retry) VALUES ('echo', '{"backoff":{"factor":0}}')$$,
    'retry.backoff.factor: must be at least 1', 'retry.backoff.factor',
    'INSERT: backoff.factor < 1');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","retry":{"backoff":{"factor":0.9}}}]}'::jsonb)$$,
    'step "a": retry.backoff.factor: must be at least 1', 'step "a": retry.backoff.factor',
    'submit: step backoff.factor < 1');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","retry":{"backoff":{"initialMs":-1}}}'::jsonb)$$,
    'retry.backoff.initialMs: must be a number >= 0', 'retry.backoff.initialMs',
    'submit: backoff.initialMs negative');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","retry":{"tries":3}}'::jsonb)$$,
    'retry: unknown field "tries"', 'retry.tries', 'submit: unknown retry field');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","retry":3}'::jsonb)$$,
    'retry: must be an object', 'retry', 'submit: retry not an object');

-- ---------------------------------------------------------------------
-- Unknown and missing fields.

SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","colour":"red"}'::jsonb)$$,
    'unknown field "colour"', 'colour', 'submit: unknown task field');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","on_success":[]}'::jsonb)$$,
    'unknown field "on_success"', 'on_success', 'submit: snake_case task field');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","colour":"red"}]}'::jsonb)$$,
    'step "a": unknown field "colour"', 'steps[0].colour', 'submit: unknown step field');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[{"task":"echo"},{"task":"echo","depends_on":["0"]}]')$$,
    'step "1": unknown field "depends_on"', 'steps[1].depends_on', 'INSERT: unknown step field');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"payload":{"x":1}}'::jsonb)$$,
    'missing "type"', 'type', 'submit: missing type');
SELECT throws_ok($$INSERT INTO dwa.tasks (payload) VALUES ('{"x":1}')$$, '23502', NULL,
    'INSERT: missing type is refused (NOT NULL)');
SELECT is(pg_temp.stored(), (SELECT s FROM baseline), 'INSERT: missing type: nothing stored');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo"},{"id":"b","input":{}}]}'::jsonb)$$,
    'step "b": missing "task"', 'steps[1].task', 'submit: missing step task');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[{"id":"a"}]')$$,
    'step "a": missing "task"', 'steps[0].task', 'INSERT: missing step task');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":7}]}'::jsonb)$$,
    'step "a": task must be a non-empty string', 'steps[0].task', 'submit: step task a number');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","description":5}]}'::jsonb)$$,
    'step "a": description must be a string', 'steps[0].description',
    'submit: step description a number');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[{"task":"echo"},{"id":"b","task":"echo","description":{"text":"hi"}}]')$$,
    'step "b": description must be a string', 'steps[1].description',
    'INSERT: step description an object');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","description":null}]}'::jsonb)$$,
    'step "a": description must be a string', 'steps[0].description',
    'submit: step description null');

-- ---------------------------------------------------------------------
-- Step ids and dependencies.

SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo"},{"id":"a","task":"noop"}]}'::jsonb)$$,
    'step "a": duplicate step id', 'steps', 'submit: duplicate step id');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[{"id":"a","task":"echo"},{"id":"b","task":"echo"},{"id":"b","task":"echo"}]')$$,
    'step "b": duplicate step id', 'steps', 'INSERT: duplicate step id');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"task":"echo"},{"id":"0","task":"echo"}]}'::jsonb)$$,
    'steps[1]: id "0" would shadow the index of another step', 'steps[1].id',
    'submit: numeric id shadowing another index');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[{"id":"1","task":"echo"},{"task":"echo"}]')$$,
    'steps[0]: id "1" would shadow the index of another step', 'steps[0].id',
    'INSERT: numeric id shadowing another index');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a.b","task":"echo"}]}'::jsonb)$$,
    'steps[0]: id "a.b" must not contain dots, braces or spaces', 'steps[0].id',
    'submit: id with a dot');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo"},{"id":"b","task":"echo","dependsOn":["a","zz"]}]}'::jsonb)$$,
    'step "b": dependsOn names unknown step "zz"', 'steps[1].dependsOn',
    'submit: dependsOn an unknown step');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[{"id":"a","task":"echo"},{"id":"b","task":"echo","dependsOn":["5"]}]')$$,
    'step "b": dependsOn names unknown step "5"', 'steps[1].dependsOn',
    'INSERT: dependsOn an index out of range');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","dependsOn":["b"]},{"id":"b","task":"echo","dependsOn":["a"]}]}'::jsonb)$$,
    'steps form a cycle: "a", "b"', 'steps.dependsOn', 'submit: a two-step cycle');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo"},{"id":"b","task":"echo","dependsOn":["b"]}]}'::jsonb)$$,
    'steps form a cycle: "b"', 'steps.dependsOn', 'submit: a step depending on itself');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"root","task":"echo"},{"id":"p","task":"echo","dependsOn":["root","r"]},{"id":"q","task":"echo","dependsOn":["p"]},{"id":"r","task":"echo","dependsOn":["q"]},{"id":"after","task":"echo","dependsOn":["r"]}]}'::jsonb)$$,
    'steps form a cycle: "p", "q", "r"', 'steps.dependsOn',
    'submit: the cycle message names the cycle''s steps, not those downstream of it');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[{"id":"a","task":"echo","dependsOn":["c"]},{"id":"b","task":"echo","dependsOn":["a"]},{"id":"c","task":"echo","dependsOn":["b"]}]')$$,
    'steps form a cycle: "a", "b", "c"', 'steps.dependsOn', 'INSERT: a three-step cycle');

-- ---------------------------------------------------------------------
-- Templates.

SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo"},{"id":"b","task":"echo","dependsOn":["a"]},{"id":"c","task":"echo","dependsOn":["a"],"input":{"v":"{{steps.b.v}}"}}]}'::jsonb)$$,
    'step "c": template "{{steps.b.v}}" reads step "b", which is not one of its ancestors',
    'steps[2].input', 'submit: a template reading a sibling');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","input":"{{steps.b}}"},{"id":"b","task":"echo"}]}'::jsonb)$$,
    'step "a": template "{{steps.b}}" reads step "b", which is not one of its ancestors',
    'steps[0].input', 'submit: a pipeline step reading a later step');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[{"id":"a","task":"echo"},{"id":"b","task":"echo","forEach":"{{steps.b.list}}"}]')$$,
    'step "b": template "{{steps.b.list}}" reads step "b", which is not one of its ancestors',
    'steps[1].input', 'INSERT: a forEach reading its own step');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","input":{"u":"{{steps.nope.u}}"}}]}'::jsonb)$$,
    'step "a": template "{{steps.nope.u}}" names unknown step "nope"', 'steps[0].input',
    'submit: a template naming an unknown step');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","input":{"u":"get {{payload.url}} as {{user.name}}"}}]}'::jsonb)$$,
    'step "a": template "{{user.name}}" has an unknown root "user"', 'steps[0].input',
    'submit: a template with an unknown root');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[{"id":"a","task":"echo","input":"{{env.HOME}}"}]')$$,
    'step "a": template "{{env.HOME}}" has an unknown root "env"', 'steps[0].input',
    'INSERT: a template with an unknown root');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","input":{"p":"{{item.path}}"}}]}'::jsonb)$$,
    'step "a": template "{{item.path}}" is only available in a forEach step', 'steps[0].input',
    'submit: item outside forEach');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","input":{"i":"{{index}}"}}]}'::jsonb)$$,
    'step "a": template "{{index}}" is only available in a forEach step', 'steps[0].input',
    'submit: index outside forEach');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[{"id":"a","task":"echo","input":"{{item}}"}]')$$,
    'step "a": template "{{item}}" is only available in a forEach step', 'steps[0].input',
    'INSERT: item outside forEach');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","input":{"m":"failed: {{error}}"}}]}'::jsonb)$$,
    'step "a": template "{{error}}" is only available in effects', 'steps[0].input',
    'submit: {{error}} in a step input');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","input":"{{result.x}}"}]}'::jsonb)$$,
    'step "a": template "{{result.x}}" is only available in effects', 'steps[0].input',
    'submit: {{result}} in a step input');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","input":"{{progress}}"}]}'::jsonb)$$,
    'step "a": template "{{progress}}" is only available in effects', 'steps[0].input',
    'submit: {{progress}} in a step input');

-- ---------------------------------------------------------------------
-- forEach.

SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","payload":{"l":[1]},"steps":[{"id":"a","task":"echo","forEach":"{{payload.l}}","forEachConcurrency":0}]}'::jsonb)$$,
    'step "a": forEachConcurrency must be at least 1', 'steps[0].forEachConcurrency',
    'submit: forEachConcurrency 0');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[{"id":"a","task":"echo","forEach":[1,2],"forEachConcurrency":-3}]')$$,
    'step "a": forEachConcurrency must be at least 1', 'steps[0].forEachConcurrency',
    'INSERT: forEachConcurrency negative');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","forEach":[1,2],"forEachConcurrency":1.5}]}'::jsonb)$$,
    'step "a": forEachConcurrency must be an integer', 'steps[0].forEachConcurrency',
    'submit: forEachConcurrency a fraction');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[{"id":"a","task":"echo","forEachConcurrency":2}]}'::jsonb)$$,
    'step "a": forEachConcurrency without forEach', 'steps[0].forEachConcurrency',
    'submit: forEachConcurrency without forEach');

-- ---------------------------------------------------------------------
-- Effects.

SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","onSuccess":[{"$event":"toast","text":"ok"},{"$event":"fax"}]}'::jsonb)$$,
    'onSuccess[1]: unknown $event "fax"', 'onSuccess[1].$event', 'submit: unknown $event in onSuccess');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","onError":[{"$event":"pager"}]}'::jsonb)$$,
    'onError[0]: unknown $event "pager"', 'onError[0].$event', 'submit: unknown $event in onError');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","onPending":[{"$event":"Toast"}]}'::jsonb)$$,
    'onPending[0]: unknown $event "Toast"', 'onPending[0].$event', 'submit: unknown $event in onPending');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","onProgress":[{"$event":"beep"}]}'::jsonb)$$,
    'onProgress[0]: unknown $event "beep"', 'onProgress[0].$event', 'submit: unknown $event in onProgress');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, on_success) VALUES ('echo', '[{"$event":"fax"}]')$$,
    'onSuccess[0]: unknown $event "fax"', 'onSuccess[0].$event', 'INSERT: unknown $event in on_success');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, on_error) VALUES ('echo', '[{"$event":"fax"}]')$$,
    'onError[0]: unknown $event "fax"', 'onError[0].$event', 'INSERT: unknown $event in on_error');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","onSuccess":[{"event":"toast"}]}'::jsonb)$$,
    'onSuccess[0]: an effect is an object with a "$event" string', 'onSuccess[0]',
    'submit: an effect without $event');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","onSuccess":{"$event":"toast"}}'::jsonb)$$,
    'onSuccess: must be an array of effects', 'onSuccess', 'submit: onSuccess not an array');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","onSuccess":[{"$event":"webhook","method":"POST"}]}'::jsonb)$$,
    'onSuccess[0]: webhook needs a "url" string', 'onSuccess[0].url', 'submit: webhook without url');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, on_progress) VALUES ('echo', '[{"$event":"webhook","url":5}]')$$,
    'onProgress[0]: webhook needs a "url" string', 'onProgress[0].url', 'INSERT: webhook url not a string');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","onError":[{"$event":"notify","channel":"fax","message":"x"}]}'::jsonb)$$,
    'onError[0]: notify needs "channel": slack, discord or email', 'onError[0].channel',
    'submit: notify with a bad channel');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, on_error) VALUES ('echo', '[{"$event":"notify","message":"x"}]')$$,
    'onError[0]: notify needs "channel": slack, discord or email', 'onError[0].channel',
    'INSERT: notify without a channel');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","onSuccess":[{"$event":"enqueue","task":"echo"}]}'::jsonb)$$,
    'onSuccess[0]: enqueue needs a "task" object', 'onSuccess[0].task', 'submit: enqueue without a task object');

-- ---------------------------------------------------------------------
-- Task types.

SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"no.such.type","payload":{}}'::jsonb)$$,
    'type: unknown task type "no.such.type"', 'type', 'submit: unknown single-step type');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, payload) VALUES ('echo', '{}'), ('no.such.type', '{}')$$,
    'type: unknown task type "no.such.type"', 'type',
    'INSERT: unknown single-step type (with a good row before it)');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"anything","steps":[{"id":"a","task":"echo"},{"id":"b","task":"gpu.magic"}]}'::jsonb)$$,
    'step "b": unknown task type "gpu.magic"', 'steps.task', 'submit: a step of an unknown type');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[{"task":"echo"}]'), ('y', '[{"task":"gpu.magic"}]')$$,
    'step "0": unknown task type "gpu.magic"', 'steps.task',
    'INSERT: a step of an unknown type (with a good row before it)');

-- ---------------------------------------------------------------------
-- Payload shape and size, empty steps, DWA-owned columns.

SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","payload":[1,2]}'::jsonb)$$,
    'payload: must be a JSON object', 'payload', 'submit: payload an array');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, payload) VALUES ('echo', '[1,2]')$$,
    'payload: must be a JSON object', 'payload', 'INSERT: payload an array');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","payload":"str"}'::jsonb)$$,
    'payload: must be a JSON object', 'payload', 'submit: payload a string');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, payload) VALUES ('echo', '"str"')$$,
    'payload: must be a JSON object', 'payload', 'INSERT: payload a string');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"echo","payload":null}'::jsonb)$$,
    'payload: must be a JSON object', 'payload', 'submit: payload JSON null');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, payload) VALUES ('echo', 'null')$$,
    'payload: must be a JSON object', 'payload', 'INSERT: payload JSON null');
SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","payload":42,"steps":[{"task":"echo"}]}'::jsonb)$$,
    'payload: must be a JSON object', 'payload', 'submit: payload a number, multi-step');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, payload) VALUES ('echo', '{}'), ('echo', '4.5')$$,
    'payload: must be a JSON object', 'payload', 'INSERT: payload a number (with a good row before it)');
SELECT throws_ok($$INSERT INTO dwa.tasks (type, payload) VALUES ('echo', NULL)$$, '23502', NULL,
    'INSERT: SQL NULL payload is refused (NOT NULL; leave the column out for {})');
SELECT is(pg_temp.stored(), (SELECT s FROM baseline), 'INSERT: SQL NULL payload: nothing stored');

SET LOCAL dwa.max_payload_bytes = 1000;
SELECT pg_temp.rejects(
    $$SELECT dwa.submit(jsonb_build_object('type', 'echo', 'payload', jsonb_build_object('s', repeat('x', 2000))))$$,
    format('payload: %s bytes, over the limit of 1000 bytes',
        pg_column_size(jsonb_build_object('s', repeat('x', 2000)))),
    'payload', 'submit: payload over the size limit');
SELECT pg_temp.rejects(
    $$INSERT INTO dwa.tasks (type, payload) SELECT 'echo', jsonb_build_object('s', repeat('y', g)) FROM generate_series(880, 1000, 60) g$$,
    format('payload: %s bytes, over the limit of 1000 bytes',
        pg_column_size(jsonb_build_object('s', repeat('y', 1000)))),
    'payload', 'INSERT: one payload over the size limit among small ones');
SELECT lives_ok(
    $$SELECT dwa.submit(jsonb_build_object('type', 'echo', 'payload', jsonb_build_object('s', repeat('x', 900))))$$,
    'submit: a payload under the limit is accepted');
SELECT is(pg_temp.stored(), 'tasks=3 steps=4',
    'submit: the payload under the limit is stored (one task, one step)');
DELETE FROM dwa.tasks WHERE payload ? 's';
SELECT is(pg_temp.stored(), (SELECT s FROM baseline), 'back to the baseline');
RESET dwa.max_payload_bytes;

SELECT pg_temp.rejects($$SELECT dwa.submit('{"type":"x","steps":[]}'::jsonb)$$,
    'steps: must not be empty (omit "steps" for a single-step task)', 'steps',
    'submit: empty steps');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) VALUES ('x', '[]')$$,
    'steps: must not be empty (omit "steps" for a single-step task)', 'steps',
    'INSERT: empty steps');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, status) VALUES ('echo', 'running')$$,
    'status, progress, result, error and timestamps are set by DWA, not on INSERT', 'status',
    'INSERT: status set');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, status) VALUES ('echo', 'completed')$$,
    'status, progress, result, error and timestamps are set by DWA, not on INSERT', 'status',
    'INSERT: status completed');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, result) VALUES ('echo', '{"fake":true}')$$,
    'status, progress, result, error and timestamps are set by DWA, not on INSERT', 'status',
    'INSERT: result set');
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, progress) VALUES ('echo', 50)$$,
    'status, progress, result, error and timestamps are set by DWA, not on INSERT', 'status',
    'INSERT: progress set');

-- The first error wins, and the whole statement goes: a bulk INSERT mixing
-- good rows with one bad definition stores none of them.
SELECT pg_temp.rejects($$INSERT INTO dwa.tasks (type, steps) SELECT 'x', CASE WHEN g = 7 THEN '[{"id":"a","task":"echo","dependsOn":["a"]}]'::jsonb ELSE '[{"id":"a","task":"echo"}]'::jsonb END FROM generate_series(1, 10) g$$,
    'steps form a cycle: "a"', 'steps.dependsOn',
    'INSERT: ten multi-step tasks, one with a cycle');

SELECT is(pg_temp.stored(), (SELECT s FROM baseline), 'at the end, still exactly the baseline');

SELECT * FROM finish();
ROLLBACK;
