-- How the convolution / attention ratio moves along the frontier of the newest
-- run: for each frontier genome (by candidate id), the layers of
-- each family and the conv : attention ratio.
WITH run AS (SELECT max(id) AS id FROM runs),
front AS (
  SELECT c.id, c.objectives, g.operators
  FROM candidates c JOIN genomes g ON g.hash = c.genome_hash, run
  WHERE c.run_id = run.id AND c.rank = 0 AND c.feasible = 1
    AND c.generation = (SELECT max(generation) FROM candidates, run
                        WHERE run_id = run.id AND rank IS NOT NULL)
),
fam AS (
  SELECT f.id, f.objectives,
    sum(CASE WHEN o.key IN ('gqa', 'mha', 'swa', 'swa-mha') THEN o.value ELSE 0 END) AS attention,
    sum(CASE WHEN o.key IN ('shortconv', 'hyena-x', 'hyena-y', 'hyena-se') THEN o.value ELSE 0 END) AS conv,
    sum(CASE WHEN o.key IN ('recurrence', 'linattn') THEN o.value ELSE 0 END) AS recurrent
  FROM front f, json_each(f.operators) o
  GROUP BY f.id
)
SELECT id AS candidate, objectives, attention, conv, recurrent,
       CASE WHEN attention > 0 THEN round(CAST(conv AS REAL) / attention, 2) END AS conv_per_attention
FROM fam
ORDER BY id;
