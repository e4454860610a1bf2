<?php
// This file is part of Moodle - http://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

namespace local_student_dashboard\local;

/**
 * Converts a Moodle grade to a BTEC level (Refer, Pass, Merit, Distinction).
 *
 * The rule is shared with the Rust sync (docs/plugin-contract.md, section 8) and both sides are tested
 * against the same vectors (fixtures/grade-conversion.json). This class has no Moodle dependency.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
final class grade_converter {

    /** @var string The lowest level: the work does not meet the pass criteria. */
    public const REFER = 'Refer';

    /** @var string Pass level. */
    public const PASS = 'Pass';

    /** @var string Merit level. */
    public const MERIT = 'Merit';

    /** @var string Distinction level. */
    public const DISTINCTION = 'Distinction';

    /** @var float Default Distinction threshold (percent, inclusive). */
    public const DEFAULT_DISTINCTION = 70.0;

    /** @var float Default Merit threshold (percent, inclusive). */
    public const DEFAULT_MERIT = 60.0;

    /** @var float Default Pass threshold (percent, inclusive). */
    public const DEFAULT_PASS = 40.0;

    /** @var float Distinction threshold. */
    private float $distinction;

    /** @var float Merit threshold. */
    private float $merit;

    /** @var float Pass threshold. */
    private float $pass;

    /**
     * Create a converter with the given thresholds (percentages, inclusive).
     *
     * @param float $distinction Percent from which a grade is a Distinction.
     * @param float $merit Percent from which a grade is a Merit.
     * @param float $pass Percent from which a grade is a Pass.
     * @throws \InvalidArgumentException If the thresholds are not ordered pass <= merit <= distinction.
     */
    public function __construct(
        float $distinction = self::DEFAULT_DISTINCTION,
        float $merit = self::DEFAULT_MERIT,
        float $pass = self::DEFAULT_PASS
    ) {
        if (!($pass <= $merit && $merit <= $distinction)) {
            throw new \InvalidArgumentException('Thresholds must satisfy pass <= merit <= distinction');
        }
        $this->distinction = $distinction;
        $this->merit = $merit;
        $this->pass = $pass;
    }

    /**
     * All levels, lowest first.
     *
     * @return string[]
     */
    public static function levels(): array {
        return [self::REFER, self::PASS, self::MERIT, self::DISTINCTION];
    }

    /**
     * Convert one grade.
     *
     * @param float|null $finalgrade The final grade, null when there is no grade.
     * @param float $grademin The grade item's minimum.
     * @param float $grademax The grade item's maximum.
     * @param string|null $scaleitem The scale item's name when the grade item uses a scale.
     * @return string|null The BTEC level, or null when the grade gives no level.
     */
    public function convert(?float $finalgrade, float $grademin, float $grademax, ?string $scaleitem = null): ?string {
        if ($scaleitem !== null) {
            return self::level_from_name($scaleitem);
        }
        $percent = self::percent($finalgrade, $grademin, $grademax);
        if ($percent === null) {
            return null;
        }
        return $this->level_from_percent($percent);
    }

    /**
     * The level for a percentage.
     *
     * @param float $percent The grade as a percentage of its range, already rounded.
     * @return string The BTEC level.
     */
    public function level_from_percent(float $percent): string {
        if ($percent >= $this->distinction) {
            return self::DISTINCTION;
        }
        if ($percent >= $this->merit) {
            return self::MERIT;
        }
        if ($percent >= $this->pass) {
            return self::PASS;
        }
        return self::REFER;
    }

    /**
     * The grade as a percentage of the item's range, rounded to 5 decimal places.
     *
     * @param float|null $finalgrade The final grade.
     * @param float $grademin The grade item's minimum.
     * @param float $grademax The grade item's maximum.
     * @return float|null Null when there is no grade or the range is empty.
     */
    public static function percent(?float $finalgrade, float $grademin, float $grademax): ?float {
        if ($finalgrade === null || $grademax <= $grademin) {
            return null;
        }
        return round(($finalgrade - $grademin) * 100 / ($grademax - $grademin), 5);
    }

    /**
     * The level named by a scale item: trimmed, compared case-insensitively.
     *
     * @param string $name The scale item's name.
     * @return string|null The level spelled canonically, or null when the name is not a level.
     */
    public static function level_from_name(string $name): ?string {
        $wanted = strtolower(trim($name, " \t\n\r\0\x0B"));
        foreach (self::levels() as $level) {
            if (strtolower($level) === $wanted) {
                return $level;
            }
        }
        return null;
    }
}
