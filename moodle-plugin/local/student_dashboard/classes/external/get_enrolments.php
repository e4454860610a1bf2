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
 * Web service local_student_dashboard_get_enrolments: manual enrolments with status, dates and roles.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class get_enrolments extends external_api {

    /**
     * Parameters: the course ids, optional.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([
            'courseids' => new external_multiple_structure(new external_value(PARAM_INT, 'Course id'),
                'Courses; omitted for every course', VALUE_DEFAULT, []),
        ]);
    }

    /**
     * List the manual enrolments.
     *
     * @param array $courseids The course ids, empty for every course.
     * @return array See execute_returns().
     */
    public static function execute(array $courseids = []): array {
        global $DB;

        $params = self::validate_parameters(self::execute_parameters(), ['courseids' => $courseids]);
        $system = \context_system::instance();
        self::validate_context($system);
        require_capability('local/student_dashboard:manage', $system);
        structures::require_batch_size(count($params['courseids']));

        $courseids = array_values(array_unique($params['courseids']));
        if (!$courseids) {
            $courseids = array_keys($DB->get_records_select('course', 'id <> ?', [SITEID], 'id ASC', 'id'));
        }

        $enrolments = [];
        $warnings = [];
        foreach ($courseids as $courseid) {
            $context = ($courseid == SITEID) ? null : \context_course::instance($courseid, IGNORE_MISSING);
            if (!$context) {
                $warnings[] = self::warning($courseid, 'invalidcourseid');
                continue;
            }
            if (!has_capability('moodle/course:enrolreview', $context)) {
                $warnings[] = self::warning($courseid, 'nopermissions');
                continue;
            }
            $sql = "SELECT ue.id, ue.userid, ue.status, ue.timestart, ue.timeend, ue.timemodified
                      FROM {user_enrolments} ue
                      JOIN {enrol} e ON e.id = ue.enrolid
                      JOIN {user} u ON u.id = ue.userid
                     WHERE e.courseid = :courseid AND e.enrol = :enrol AND u.deleted = 0
                  ORDER BY ue.userid ASC, ue.id ASC";
            $rows = $DB->get_records_sql($sql, ['courseid' => $courseid, 'enrol' => 'manual']);
            if (!$rows) {
                continue;
            }
            $roles = [];
            $assignments = $DB->get_records('role_assignments', ['contextid' => $context->id, 'component' => ''],
                'userid ASC, roleid ASC', 'id, userid, roleid');
            foreach ($assignments as $assignment) {
                $roles[$assignment->userid][(int) $assignment->roleid] = (int) $assignment->roleid;
            }
            foreach ($rows as $row) {
                $enrolments[] = [
                    'id' => (int) $row->id,
                    'courseid' => (int) $courseid,
                    'userid' => (int) $row->userid,
                    'roleids' => array_values($roles[$row->userid] ?? []),
                    'status' => (int) $row->status,
                    'timestart' => (int) $row->timestart,
                    'timeend' => (int) $row->timeend,
                    'timemodified' => (int) $row->timemodified,
                ];
            }
        }
        return ['enrolments' => $enrolments, 'warnings' => $warnings];
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
     * Returns: one row per manual enrolment.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        return new external_single_structure([
            'enrolments' => new external_multiple_structure(new external_single_structure([
                'id' => new external_value(PARAM_INT, 'user_enrolments id'),
                'courseid' => new external_value(PARAM_INT, 'Course id'),
                'userid' => new external_value(PARAM_INT, 'User id'),
                'roleids' => new external_multiple_structure(new external_value(PARAM_INT, 'Role id'),
                    'Roles held in the course context'),
                'status' => new external_value(PARAM_INT, '0 active, 1 suspended'),
                'timestart' => new external_value(PARAM_INT, 'Start, 0 if not set'),
                'timeend' => new external_value(PARAM_INT, 'End, 0 for none'),
                'timemodified' => new external_value(PARAM_INT, 'Last modified'),
            ])),
            'warnings' => new external_warnings(),
        ]);
    }
}
