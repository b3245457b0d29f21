-- faults.sql: what would be wrong between dwa.steps and the tables that
-- index it (dwa.ready, dwa.runs, dwa.claims, the forEach cursors): one
-- line a fault, none when all agree.  The harness runs it after each test.
SELECT format('step %s is ready without a ready row', s.id)
  FROM dwa.steps s
 WHERE s.status = 'ready' AND NOT EXISTS (SELECT 1 FROM dwa.ready r WHERE r.step_id = s.id)
UNION ALL
SELECT format('ready row of step %s, which is %s', r.step_id, coalesce(s.status, 'gone'))
  FROM dwa.ready r LEFT JOIN dwa.steps s ON s.id = r.step_id
 WHERE s.status IS DISTINCT FROM 'ready'
UNION ALL
SELECT format('ready row of step %s differs from the step', r.step_id)
  FROM dwa.ready r JOIN dwa.steps s ON s.id = r.step_id
 WHERE (r.priority, r.run_after, r.task, r.queue) IS DISTINCT FROM
       (s.priority, s.run_after, s.task, s.queue)
    OR r.backend IS DISTINCT FROM s.backend
UNION ALL
SELECT format('step %s has %s ready rows', r.step_id, count(*))
  FROM dwa.ready r GROUP BY r.step_id HAVING count(*) > 1
UNION ALL
SELECT format('step %s runs %s without a runs row', s.id, s.run_id)
  FROM dwa.steps s
 WHERE s.status = 'running' AND NOT (s.item_index IS NULL AND s.fe_total IS NOT NULL)
   AND NOT EXISTS (SELECT 1 FROM dwa.runs u WHERE u.run_id = s.run_id AND u.step_id = s.id)
   AND NOT EXISTS (SELECT 1 FROM dwa.claims c, unnest(c.step_ids, c.run_ids) x(step_id, run_id)
                    WHERE x.run_id = s.run_id AND x.step_id = s.id)
UNION ALL
SELECT format('run %s of step %s is in dwa.runs and in batch %s', u.run_id, u.step_id, c.batch)
  FROM dwa.runs u
  JOIN dwa.claims c ON c.run_ids @> ARRAY[u.run_id]
UNION ALL
SELECT format('batch %s: %s steps, %s run ids, the first %s', c.batch, cardinality(c.step_ids),
              cardinality(c.run_ids), c.run_ids[1])
  FROM dwa.claims c
 WHERE cardinality(c.step_ids) IS DISTINCT FROM cardinality(c.run_ids)
    OR NOT c.run_ids[1] >= c.batch
UNION ALL
SELECT format('runs row %s of step %s, which is %s', u.run_id, u.step_id,
              coalesce(s.status || ' (run ' || s.run_id || ')', 'gone'))
  FROM dwa.runs u LEFT JOIN dwa.steps s ON s.id = u.step_id
 WHERE s.status IS DISTINCT FROM 'running' OR s.run_id IS DISTINCT FROM u.run_id
UNION ALL
SELECT format('forEach step %s: element %s is %s, its cursor at %s', p.id, e.item_index,
              e.status, p.fe_next)
  FROM dwa.steps p
  JOIN dwa.steps e ON e.task_id = p.task_id AND e.step_index = p.step_index
                  AND e.item_index IS NOT NULL
 WHERE p.item_index IS NULL AND p.fe_total IS NOT NULL AND p.status = 'running'
   AND (e.item_index < p.fe_next) = (e.status = 'waiting');
