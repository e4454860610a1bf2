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

/**
 * Event observers: enrolment and grade changes are sent to the zmsync receiver by an ad-hoc task.
 *
 * The observers are not internal, so they run only after the triggering transaction commits.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

$observers = [
    [
        'eventname' => '\core\event\user_enrolment_created',
        'callback' => '\local_student_dashboard\observer::user_enrolment_changed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\user_enrolment_updated',
        'callback' => '\local_student_dashboard\observer::user_enrolment_changed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\user_enrolment_deleted',
        'callback' => '\local_student_dashboard\observer::user_enrolment_changed',
        'internal' => false,
    ],
    [
        'eventname' => '\core\event\user_graded',
        'callback' => '\local_student_dashboard\observer::user_graded',
        'internal' => false,
    ],
];
