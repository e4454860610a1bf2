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

namespace local_student_dashboard\external;

use core_external\external_api;
use core_external\external_function_parameters;
use core_external\external_multiple_structure;
use core_external\external_single_structure;
use core_external\external_value;
use core_external\external_warnings;

/**
 * Web service local_student_dashboard_get_course_grades: course-total grades, for Moodle to Zoho.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class get_course_grades extends external_api {

    /**
     * Parameters: the course ids.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([
            'courseids' => new external_multiple_structure(new external_value(PARAM_INT, 'Course id'), 'Courses'),
        ]);
    }

    /**
     * Read the course totals, regrading a course first when its gradebook needs it.
     *
     * @param array $courseids The course ids.
     * @return array See execute_returns().
     */
    public static function execute(array $courseids): array {
        global $CFG, $DB;
        require_once($CFG->libdir . '/gradelib.php');

        $params = self::validate_parameters(self::execute_parameters(), ['courseids' => $courseids]);
        $system = \context_system::instance();
        self::validate_context($system);
        require_capability('local/student_dashboard:manage', $system);
        structures::require_batch_size(count($params['courseids']));

        $grades = [];
        $warnings = [];
        foreach (array_unique($params['courseids']) as $courseid) {
            $context = ($courseid == SITEID) ? null : \context_course::instance($courseid, IGNORE_MISSING);
            if (!$context) {
                $warnings[] = self::warning($courseid, 'invalidcourseid');
                continue;
            }
            if (!has_capability('moodle/grade:viewall', $context)) {
                $warnings[] = self::warning($courseid, 'nopermissions');
                continue;
            }
            $item = \grade_item::fetch_course_item($courseid);
            if ($item->needsupdate) {
                grade_regrade_final_grades($courseid);
                $item = \grade_item::fetch_course_item($courseid);
            }
            $scaleitems = [];
            $usesscale = ((int) $item->gradetype === GRADE_TYPE_SCALE && !empty($item->scaleid));
            if ($usesscale) {
                $scale = $DB->get_field('scale', 'scale', ['id' => $item->scaleid]);
                $scaleitems = $scale === false ? [] : array_map('trim', explode(',', $scale));
            }
            $records = $DB->get_records('grade_grades', ['itemid' => $item->id], 'userid ASC',
                'id, userid, finalgrade, timemodified');
            foreach ($records as $record) {
                $finalgrade = $record->finalgrade === null ? null : (float) $record->finalgrade;
                $scaleitem = null;
                if ($usesscale && $finalgrade !== null) {
                    $scaleitem = $scaleitems[max(1, (int) round($finalgrade)) - 1] ?? null;
                }
                $grades[] = [
                    'courseid' => (int) $courseid,
                    'userid' => (int) $record->userid,
                    'finalgrade' => $finalgrade,
                    'grademin' => (float) $item->grademin,
                    'grademax' => (float) $item->grademax,
                    'scaleid' => $usesscale ? (int) $item->scaleid : null,
                    'scaleitem' => $scaleitem,
                    'timemodified' => $record->timemodified === null ? null : (int) $record->timemodified,
                ];
            }
        }
        return ['grades' => $grades, 'warnings' => $warnings];
    }

    /**
     * A course-level warning.
     *
     * @param int $courseid The course.
     * @param string $code invalidcourseid or nopermissions.
     * @return array
     */
    private static function warning(int $courseid, string $code): array {
        return [
            'item' => 'course',
            'itemid' => $courseid,
            'warningcode' => $code,
            'message' => get_string('warning:' . $code, 'local_student_dashboard', $courseid),
        ];
    }

    /**
     * Returns: one row per course-total grade.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        return new external_single_structure([
            'grades' => new external_multiple_structure(new external_single_structure([
                'courseid' => new external_value(PARAM_INT, 'Course id'),
                'userid' => new external_value(PARAM_INT, 'User id'),
                'finalgrade' => new external_value(PARAM_FLOAT, 'Final grade, null when not graded', VALUE_REQUIRED, null,
                    NULL_ALLOWED),
                'grademin' => new external_value(PARAM_FLOAT, 'Course total minimum'),
                'grademax' => new external_value(PARAM_FLOAT, 'Course total maximum'),
                'scaleid' => new external_value(PARAM_INT, 'Scale id when the course total uses a scale', VALUE_REQUIRED, null,
                    NULL_ALLOWED),
                'scaleitem' => new external_value(PARAM_TEXT, 'Scale item name at the grade', VALUE_REQUIRED, null,
                    NULL_ALLOWED),
                'timemodified' => new external_value(PARAM_INT, 'Grade last modified', VALUE_REQUIRED, null, NULL_ALLOWED),
            ])),
            'warnings' => new external_warnings(),
        ]);
    }
}
