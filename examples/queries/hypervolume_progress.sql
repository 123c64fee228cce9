-- Hypervolume and frontier size per generation of every run, with the share
-- of attention layers in the population: is the search still improving?
SELECT s.run_id, s.generation + 1 AS generation, round(s.hypervolume, 4) AS hypervolume,
       s.frontier_size, s.evaluated, s.failed,
       round((SELECT sum(share) FROM generation_operators o
              WHERE o.run_id = s.run_id AND o.generation = s.generation
                AND o.operator IN ('gqa', 'mha', 'swa', 'swa-mha')), 3) AS attention_share
FROM generation_stats s
ORDER BY s.run_id, s.generation;
